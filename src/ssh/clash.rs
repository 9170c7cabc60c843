// SPDX-License-Identifier: MPL-2.0
//! The modes an SSH tunnel cannot serve, refused before ssh runs.

use crate::config::{Protocol, Role};

/// Why a tunnel cannot serve several ports or receivers.
const ONE_RECEIVER: &str = "a tunnel forwards one port to one receiver";

/// vidgear's refusals for SSH tunnel mode, and ipc, which has no port to forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TunnelClash {
    #[error("an SSH tunnel is for the sending side only: the receiver binds, the sender reaches it through the tunnel")]
    Receiver,
    #[error("ssh-tunnel cannot be combined with multi-server=true: {ONE_RECEIVER}")]
    MultiServer,
    #[error("ssh-tunnel cannot be combined with multi-client=true: {ONE_RECEIVER}")]
    MultiClient,
    #[error("ssh-tunnel needs protocol=tcp: an ipc socket is a local file, not a port to forward")]
    Ipc,
}

/// Refuses what vidgear refuses with `ssh_tunnel_mode` set: the receiving side (vidgear
/// logs and ignores it there; we refuse, as a property that does nothing is a defect),
/// multi-server and multi-client mode; and ipc (vidgear builds a broken forward from the
/// path).
pub fn check_tunnel_modes(
    role: Role,
    protocol: Protocol,
    multi_server: bool,
    multi_client: bool,
) -> Result<(), TunnelClash> {
    if role == Role::Receiver {
        return Err(TunnelClash::Receiver);
    }
    if multi_server {
        return Err(TunnelClash::MultiServer);
    }
    if multi_client {
        return Err(TunnelClash::MultiClient);
    }
    if protocol != Protocol::Tcp {
        return Err(TunnelClash::Ipc);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clashes_like_vidgear() {
        let tcp = Protocol::Tcp;
        assert_eq!(check_tunnel_modes(Role::Sender, tcp, false, false), Ok(()));
        assert_eq!(
            check_tunnel_modes(Role::Receiver, tcp, false, false),
            Err(TunnelClash::Receiver)
        );
        assert_eq!(
            check_tunnel_modes(Role::Sender, tcp, true, false),
            Err(TunnelClash::MultiServer)
        );
        assert_eq!(
            check_tunnel_modes(Role::Sender, tcp, false, true),
            Err(TunnelClash::MultiClient)
        );
        assert_eq!(
            check_tunnel_modes(Role::Sender, Protocol::Ipc, false, false),
            Err(TunnelClash::Ipc)
        );
        let text = TunnelClash::MultiClient.to_string();
        assert!(text.contains("multi-client=true"), "{text}");
    }
}
