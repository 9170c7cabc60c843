// SPDX-License-Identifier: MPL-2.0
//! What both elements do at start before opening their sockets: check the settings, load
//! (or make) the CURVE keys, and build the transport's configuration.

use crate::config::{ModeError, Pattern, Role, SecureMode};
use crate::properties::CommonSettings;
use crate::protocol;
use crate::security::{ClientPolicy, KeyDirs};
use crate::transport::{endpoint, LinkConfig, Waker};
use std::sync::Arc;
use std::time::Duration;

/// Why the settings cannot start a link. Texts are for users.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Modes(#[from] ModeError),
    #[error("{0}")]
    Keys(String),
    #[error("address is empty")]
    EmptyAddress,
}

/// The transport's configuration for `settings`, and whether a new key set was made.
/// In secure mode it loads the keys, making a vidgear-compatible set first if the set is
/// missing (or `overwrite_keys`).
pub fn link_config(
    settings: &CommonSettings,
    role: Role,
    overwrite_keys: bool,
) -> Result<(LinkConfig, bool), SettingsError> {
    let modes = settings.modes()?;
    modes.validate(role)?;
    let (curve, clients, generated) = load_keys(settings, role, overwrite_keys)?;
    if settings.address.is_empty() {
        return Err(SettingsError::EmptyAddress);
    }
    let endpoints = modes
        .active_ports(role, settings.own_port())
        .into_iter()
        .map(|port| endpoint(settings.protocol, &settings.address, port))
        .collect();
    let config = LinkConfig {
        role,
        pattern: settings.pattern,
        endpoints,
        request_timeout: Duration::from_millis(u64::from(settings.request_timeout_ms)),
        max_retries: settings.max_retries,
        // Headers may be larger than a tiny frame limit.
        max_message_bytes: i64::try_from(
            settings
                .max_frame_bytes
                .max(protocol::MAX_HEADER_BYTES as u64),
        )
        .unwrap_or(i64::MAX),
        curve,
        clients,
        // Several servers share the socket: skipping would starve all but the busiest.
        newest_only: role == Role::Receiver
            && settings.pattern == Pattern::PubSub
            && !settings.multi_server,
    };
    Ok((config, generated))
}

type LoadedKeys = (
    Option<crate::security::CurveKeys>,
    Option<ClientPolicy>,
    bool,
);

fn load_keys(
    settings: &CommonSettings,
    role: Role,
    overwrite_keys: bool,
) -> Result<LoadedKeys, SettingsError> {
    let mode = settings.secure_mode;
    if mode == SecureMode::None {
        return Ok((None, None, false));
    }
    let dirs = KeyDirs::new(&settings.cert_dir).map_err(SettingsError::Keys)?;
    let generated = dirs.ensure(overwrite_keys).map_err(SettingsError::Keys)?;
    match role {
        Role::Sender => Ok((
            Some(dirs.client_keys().map_err(SettingsError::Keys)?),
            None,
            generated,
        )),
        Role::Receiver => {
            let policy = if mode == SecureMode::IronHouse {
                ClientPolicy::Listed(dirs.allowed_clients().map_err(SettingsError::Keys)?)
            } else {
                ClientPolicy::AnyKey
            };
            let keys = dirs.server_keys().map_err(SettingsError::Keys)?;
            Ok((Some(keys), Some(policy), generated))
        }
    }
}

/// What both elements' `start()` does first: check the settings, load (or make) the keys,
/// and create the waker `unlock()` uses. Errors are ready to return from `start()`.
pub fn prepare_start(
    settings: &CommonSettings,
    role: Role,
    overwrite_keys: bool,
    cat: gst::DebugCategory,
    element: &gst::Element,
) -> Result<(LinkConfig, Arc<Waker>), gst::ErrorMessage> {
    let (config, generated) = link_config(settings, role, overwrite_keys)
        .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ["Invalid settings: {}", e]))?;
    if generated {
        gst::info!(
            cat,
            obj = element,
            "made a new CURVE key set under cert-dir '{}'",
            settings.cert_dir
        );
    }
    let waker = Waker::new().map_err(|e| {
        gst::error_msg!(
            gst::ResourceError::Failed,
            ["Could not create a wake-up pipe: {}", e]
        )
    })?;
    Ok((config, Arc::new(waker)))
}
