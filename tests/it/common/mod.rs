// SPDX-License-Identifier: MPL-2.0
//! Helpers shared by the integration tests: the test frames (the formula of
//! tests/python/netgear_peer.py), pipelines that feed `netgearsink` from appsrc or drain
//! `netgearsrc` into appsink, what their buses say, free ports, the real vidgear peers, and
//! tests that need a process of their own.

mod bus;
mod child;
mod elements;
mod frames;
mod keys;
mod peers;
mod ports;
mod process;

pub use bus::*;
pub use child::*;
pub use elements::*;
pub use frames::*;
pub use keys::*;
pub use peers::*;
pub use ports::*;
pub use process::*;
