// SPDX-License-Identifier: MPL-2.0
//! What both elements do at start before opening their sockets: check the settings, load
//! (or make) the CURVE keys, and build the transport's configuration.

use crate::config::Protocol;
use crate::config::{
    check_request_timeout, ModeError, Pattern, RequestTimeoutError, Role, SecureMode,
};
use crate::properties::CommonSettings;
use crate::transport::{endpoint, ClientPolicy, LinkConfig, Waker};
use gst::prelude::*;
use netgear_protocol::addresses::{AddressListError, AllowedAddresses};
use netgear_protocol::keys::{CurveKeys, KeyDirs, KeyError, KeySet};
use std::sync::Arc;
use std::time::Duration;

/// Why the settings cannot start a link. Texts are for users.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Modes(#[from] ModeError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    RequestTimeout(#[from] RequestTimeoutError),
    #[error("address is empty")]
    EmptyAddress,
    #[error("allowed-addresses: {0}")]
    Addresses(#[from] AddressListError),
    #[error("allowed-addresses needs secure-mode=stonehouse or ironhouse: only the CURVE handshake checks addresses")]
    AddressesWithoutSecurity,
    #[error(
        "allowed-addresses cannot be used with protocol=ipc: a Unix socket peer has no address"
    )]
    AddressesWithIpc,
}

/// What start-up needs besides the shared properties.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyOptions<'a> {
    /// `overwrite-cert`: make a new key set even if one exists.
    pub overwrite: bool,
    /// `allowed-addresses` (receiver): the peers the authenticator lets in; empty: any.
    pub allowed_addresses: &'a str,
}

/// The transport's configuration for `settings`, and the key set it loaded (secure mode),
/// made first if the key directory held none (or with `overwrite`).
pub fn link_config(
    settings: &CommonSettings,
    role: Role,
    options: KeyOptions<'_>,
) -> Result<(LinkConfig, Option<KeySet>), SettingsError> {
    let modes = settings.modes()?;
    modes.validate(role)?;
    check_request_timeout(settings.request_timeout_ms)?;
    let (curve, clients, keys) = load_keys(settings, role, options)?;
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
                .max(netgear_protocol::MAX_HEADER_BYTES as u64),
        )
        .unwrap_or(i64::MAX),
        curve,
        clients,
        // Set by the element, which turns events into bus messages.
        events: Default::default(),
        // Several servers share the socket: skipping would starve all but the busiest.
        newest_only: role == Role::Receiver
            && settings.pattern == Pattern::PubSub
            && !settings.multi_server,
    };
    Ok((config, keys))
}

type LoadedKeys = (Option<CurveKeys>, Option<ClientPolicy>, Option<KeySet>);

/// The peers a receiver lets in, checked against the other settings.
fn allowed_addresses(
    settings: &CommonSettings,
    text: &str,
) -> Result<AllowedAddresses, SettingsError> {
    let allowed = AllowedAddresses::parse(text)?;
    if allowed.is_any() {
        return Ok(allowed);
    }
    if settings.secure_mode == SecureMode::None {
        return Err(SettingsError::AddressesWithoutSecurity);
    }
    if settings.protocol == Protocol::Ipc {
        return Err(SettingsError::AddressesWithIpc);
    }
    Ok(allowed)
}

fn load_keys(
    settings: &CommonSettings,
    role: Role,
    options: KeyOptions<'_>,
) -> Result<LoadedKeys, SettingsError> {
    let allowed = allowed_addresses(settings, options.allowed_addresses)?;
    let mode = settings.secure_mode;
    if mode == SecureMode::None {
        return Ok((None, None, None));
    }
    let keys = KeyDirs::new(&settings.cert_dir)?.load(options.overwrite)?;
    let (curve, policy) = match role {
        Role::Sender => (keys.client_keys()?, None),
        Role::Receiver => {
            let policy = match mode {
                SecureMode::IronHouse => ClientPolicy::listed(keys.allowed_clients()?),
                _ => ClientPolicy::any_key(),
            };
            (keys.server_keys()?, Some(policy.with_addresses(allowed)))
        }
    };
    Ok((Some(curve), policy, Some(keys)))
}

/// What both elements' `start()` does first: check the URI and the settings, load (or make) the keys,
/// and create the waker `unlock()` uses. Errors are ready to return from `start()`.
pub fn prepare_start(
    settings: &CommonSettings,
    role: Role,
    options: KeyOptions<'_>,
    cat: gst::DebugCategory,
    element: &gst::Element,
) -> Result<(LinkConfig, Arc<Waker>), gst::ErrorMessage> {
    crate::uri::check_refused(element)?;
    let (config, keys) = link_config(settings, role, options)
        .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ["Invalid settings: {}", e]))?;
    if let Some(keys) = &keys {
        report_keys(keys, &settings.cert_dir, cat, element);
    }
    let waker = Waker::new().map_err(|e| {
        gst::error_msg!(
            gst::ResourceError::Failed,
            ["Could not create a wake-up pipe: {}", e]
        )
    })?;
    Ok((config, Arc::new(waker)))
}

/// Logs a newly made key set, and warns (log and bus) about key files others can read.
fn report_keys(keys: &KeySet, cert_dir: &str, cat: gst::DebugCategory, element: &gst::Element) {
    if keys.generated {
        gst::info!(
            cat,
            obj = element,
            "made a new CURVE key set under cert-dir '{cert_dir}'"
        );
    }
    for warning in &keys.warnings {
        let text = warning.to_string();
        gst::warning!(cat, obj = element, "{text}");
        let message = gst::message::Warning::builder(gst::ResourceError::Settings, &text)
            .src(element)
            .build();
        let _ = element.post_message(message);
    }
}
