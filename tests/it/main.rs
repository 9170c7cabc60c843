// SPDX-License-Identifier: MPL-2.0
//! The integration tests, one binary with a module per area, all sharing the helpers in
//! `common`. Most run the elements against each other or against the real vidgear in the
//! venv scripts/setup makes (NETGEAR_PYTHON).

mod common;

mod allowed_addresses;
mod bands_vidgear;
mod bgr_vidgear;
mod camera_vidgear;
mod capture_time;
mod diagnostics;
mod downstream_refusal;
mod drop_in_errors;
mod embedding;
mod faults;
mod file_source;
mod frame_age;
mod give_up;
mod harness;
mod hostile;
mod interop_vidgear;
mod jpeg;
mod keys;
mod lifecycle;
mod link_faults;
mod load_balance_vidgear;
mod messages_vidgear;
mod modes_vidgear;
mod montage_vidgear;
mod negotiation_vidgear;
mod network;
mod pipelines;
mod pipelining;
mod recording;
mod returns_vidgear;
mod secure_vidgear;
mod secure_vidgear_patterns;
mod soak;
mod ssh_tunnel;
mod tensors_vidgear;
mod timing;
mod units;
mod uri;
mod uri_vidgear;
