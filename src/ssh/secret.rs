// SPDX-License-Identifier: MPL-2.0
//! The SSH password, kept out of `Debug` output and logs.

use std::fmt;

/// A password that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The password itself, for ssh's environment only.
    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::{SshHost, TunnelConfig};

    #[test]
    fn secrets_stay_hidden() {
        let mut config = TunnelConfig::new("u@h".parse::<SshHost>().unwrap());
        config.password = Some(Secret::new("hunter2"));
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
