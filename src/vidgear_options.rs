// SPDX-License-Identifier: MPL-2.0
//! vidgear's option names as `netgear://` URI keys, in vidgear's units: a vidgear user can
//! write `?request_timeout=4&bidirectional_mode=True&jpeg_compression_quality=80` as in
//! `NetGear(..., **options)`, and gets what vidgear would do. Each name becomes one or two of
//! our properties with its value converted (seconds to milliseconds, a quality to a whole
//! number, a colorspace name to `jpeg-colorspace`); names with no equivalent are refused
//! saying what to do instead. Our own spellings (`request-timeout=4000`) keep our units.

use crate::config::{Role, MIN_REQUEST_TIMEOUT_MS};

/// How a vidgear value becomes ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// The same value (booleans, counts, enum numbers, paths).
    Same,
    /// vidgear's seconds (a number) to our milliseconds.
    Seconds,
    /// vidgear's `int(value)` of a number.
    WholeNumber,
    /// `jpeg_compression`: a boolean, or a colorspace name that also turns it on.
    Compression,
}

/// One vidgear option and the property it sets on each element (`None`: that element has
/// none).
struct VidgearOption {
    name: &'static str,
    sender: Option<&'static str>,
    receiver: Option<&'static str>,
    unit: Unit,
}

const fn both(name: &'static str, property: &'static str, unit: Unit) -> VidgearOption {
    VidgearOption {
        name,
        sender: Some(property),
        receiver: Some(property),
        unit,
    }
}

const fn sender(name: &'static str, property: &'static str, unit: Unit) -> VidgearOption {
    VidgearOption {
        name,
        sender: Some(property),
        receiver: None,
        unit,
    }
}

/// vidgear 0.3.6's `options` keys (vidgear/gears/netgear.py) with an equivalent.
const OPTIONS: &[VidgearOption] = &[
    both("multiserver_mode", "multi-server", Unit::Same),
    both("multiclient_mode", "multi-client", Unit::Same),
    both("bidirectional_mode", "bidirectional", Unit::Same),
    both("secure_mode", "secure-mode", Unit::Same),
    both("custom_cert_location", "cert-dir", Unit::Same),
    sender("overwrite_cert", "overwrite-cert", Unit::Same),
    sender("ssh_tunnel_mode", "ssh-tunnel", Unit::Same),
    sender("ssh_tunnel_keyfile", "ssh-keyfile", Unit::Same),
    // A receiver's JPEG options apply to the frames it returns.
    VidgearOption {
        name: "jpeg_compression",
        sender: Some("jpeg-compression"),
        receiver: Some("return-jpeg"),
        unit: Unit::Compression,
    },
    VidgearOption {
        name: "jpeg_compression_quality",
        sender: Some("jpeg-quality"),
        receiver: Some("return-jpeg-quality"),
        unit: Unit::WholeNumber,
    },
    VidgearOption {
        name: "jpeg_compression_fastdct",
        sender: Some("jpeg-fastdct"),
        receiver: Some("return-jpeg-fastdct"),
        unit: Unit::Same,
    },
    sender(
        "jpeg_compression_fastupsample",
        "jpeg-fastupsample",
        Unit::Same,
    ),
    both("max_retries", "max-retries", Unit::Same),
    both("request_timeout", "request-timeout", Unit::Seconds),
    VidgearOption {
        name: "subscriber_timeout",
        sender: None,
        receiver: Some("timeout"),
        unit: Unit::Seconds,
    },
];

/// vidgear's options with no URI key, and what to do instead.
const NO_EQUIVALENT: &[(&str, &str)] = &[
    (
        "ssh_tunnel_pwd",
        "a password does not belong in a URI; set the ssh-password property",
    ),
    ("logging", "use GST_DEBUG=netgear*:4"),
    (
        "receive_mode",
        "the element decides it: netgearsrc receives, netgearsink sends",
    ),
    ("flag", "the elements choose their own ZeroMQ send flags"),
    ("copy", "the elements choose their own ZeroMQ send flags"),
    ("track", "the elements choose their own ZeroMQ send flags"),
];

/// The colorspaces vidgear's `jpeg_compression` takes as a string.
const VIDGEAR_COLORSPACES: &[&str] = &[
    "RGB", "BGR", "RGBX", "BGRX", "XBGR", "XRGB", "GRAY", "RGBA", "BGRA", "ABGR", "ARGB", "CMYK",
];

/// Why a vidgear option in a URI cannot be used; each text names the option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VidgearOptionError {
    #[error("vidgear's {name} has no URI key: {why}")]
    NoEquivalent { name: String, why: &'static str },
    #[error("{element} has no equivalent of vidgear's {name}{}", other_role(.other))]
    OtherRole {
        name: &'static str,
        element: &'static str,
        other: Option<(&'static str, &'static str)>,
    },
    #[error("{name}={value} is not a number of seconds (vidgear's unit), e.g. {name}=4")]
    NotSeconds { name: &'static str, value: String },
    #[error("{name}={value} is in seconds, as in vidgear: the shortest is {name}=0.1 ({MIN_REQUEST_TIMEOUT_MS} ms)")]
    TooShort { name: &'static str, value: String },
    #[error("{name}={value} is not a number")]
    NotNumber { name: &'static str, value: String },
    #[error("jpeg_compression={value} is not true, false or a colorspace vidgear knows ({})", VIDGEAR_COLORSPACES.join(", "))]
    NotCompression { value: String },
    #[error("jpeg_compression={0}: netgearsrc encodes returned frames in the return pad's format; use jpeg_compression=true")]
    ReceiverColorspace(String),
}

fn other_role(other: &Option<(&'static str, &'static str)>) -> String {
    match other {
        Some((element, property)) => format!(" (it is {element}'s {property})"),
        None => String::new(),
    }
}

fn element_name(role: Role) -> &'static str {
    match role {
        Role::Sender => "netgearsink",
        Role::Receiver => "netgearsrc",
    }
}

/// A URI key's `(property, value)` pairs if `key` is one of vidgear's option names; `None`
/// if it is not (it is then one of our property names, or nothing).
pub fn translate(
    role: Role,
    key: &str,
    value: &str,
) -> Option<Result<Vec<(&'static str, String)>, VidgearOptionError>> {
    if let Some((name, why)) = NO_EQUIVALENT.iter().find(|(name, _)| *name == key) {
        return Some(Err(VidgearOptionError::NoEquivalent {
            name: (*name).to_owned(),
            why,
        }));
    }
    let option = OPTIONS.iter().find(|o| o.name == key)?;
    let (own, other, other_role) = match role {
        Role::Sender => (option.sender, option.receiver, Role::Receiver),
        Role::Receiver => (option.receiver, option.sender, Role::Sender),
    };
    let Some(property) = own else {
        return Some(Err(VidgearOptionError::OtherRole {
            name: option.name,
            element: element_name(role),
            other: other.map(|p| (element_name(other_role), p)),
        }));
    };
    Some(convert(option, role, property, value.trim()))
}

fn convert(
    option: &VidgearOption,
    role: Role,
    property: &'static str,
    value: &str,
) -> Result<Vec<(&'static str, String)>, VidgearOptionError> {
    let name = option.name;
    let text = match option.unit {
        Unit::Same => value.to_owned(),
        Unit::Seconds => seconds_to_ms(name, value)?.to_string(),
        Unit::WholeNumber => whole_number(name, value)?,
        Unit::Compression => return compression(role, property, value),
    };
    Ok(vec![(property, text)])
}

/// vidgear's seconds as our milliseconds (decimals allowed, unlike vidgear's `int`).
fn seconds_to_ms(name: &'static str, value: &str) -> Result<u32, VidgearOptionError> {
    let not_seconds = || VidgearOptionError::NotSeconds {
        name,
        value: value.to_owned(),
    };
    let seconds: f64 = value.parse().map_err(|_| not_seconds())?;
    if !seconds.is_finite() || seconds < 0.0 || seconds * 1000.0 > f64::from(u32::MAX) {
        return Err(not_seconds());
    }
    let ms = (seconds * 1000.0).round() as u32;
    // Only request_timeout has a minimum: a receiver's `timeout` of 0 is "never", as
    // vidgear's unset subscriber_timeout is.
    if name == "request_timeout" && ms < MIN_REQUEST_TIMEOUT_MS {
        return Err(VidgearOptionError::TooShort {
            name,
            value: value.to_owned(),
        });
    }
    Ok(ms)
}

/// vidgear's `int(value)`: a number, its fraction dropped (the range is the property's).
fn whole_number(name: &'static str, value: &str) -> Result<String, VidgearOptionError> {
    let number: f64 = value
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite())
        .ok_or_else(|| VidgearOptionError::NotNumber {
            name,
            value: value.to_owned(),
        })?;
    Ok(format!("{}", number.trunc()))
}

/// `jpeg_compression`: a boolean as it is; a colorspace name (any case, as vidgear takes
/// it) turns compression on with that colorspace, which only a sender has.
fn compression(
    role: Role,
    property: &'static str,
    value: &str,
) -> Result<Vec<(&'static str, String)>, VidgearOptionError> {
    let upper = value.to_ascii_uppercase();
    if !VIDGEAR_COLORSPACES.contains(&upper.as_str()) {
        return match is_boolean(value) {
            true => Ok(vec![(property, value.to_owned())]),
            false => Err(VidgearOptionError::NotCompression {
                value: value.to_owned(),
            }),
        };
    }
    match role {
        Role::Sender => Ok(vec![
            (property, "true".to_owned()),
            ("jpeg-colorspace", upper),
        ]),
        Role::Receiver => Err(VidgearOptionError::ReceiverColorspace(value.to_owned())),
    }
}

/// The boolean spellings GStreamer's deserializer takes (Python's True/False among them).
fn is_boolean(value: &str) -> bool {
    ["true", "false", "yes", "no", "t", "f", "1", "0"]
        .iter()
        .any(|b| value.eq_ignore_ascii_case(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(role: Role, key: &str, value: &str) -> Vec<(&'static str, String)> {
        translate(role, key, value)
            .expect("a vidgear option")
            .expect("a good value")
    }

    fn err(role: Role, key: &str, value: &str) -> String {
        translate(role, key, value)
            .expect("a vidgear option")
            .expect_err("a bad value")
            .to_string()
    }

    fn one(property: &'static str, value: &str) -> Vec<(&'static str, String)> {
        vec![(property, value.to_owned())]
    }

    #[test]
    fn vidgear_names_become_our_properties_in_our_units() {
        use Role::{Receiver as R, Sender as S};
        // One case a line: role, vidgear's name and value, our property and value.
        #[rustfmt::skip]
        let cases = [
            (S, "request_timeout", "4", "request-timeout", "4000"),
            (R, "request_timeout", "0.25", "request-timeout", "250"),
            (S, "max_retries", "5", "max-retries", "5"),
            (S, "bidirectional_mode", "True", "bidirectional", "True"),
            (R, "multiserver_mode", "true", "multi-server", "true"),
            (S, "secure_mode", "1", "secure-mode", "1"),
            (R, "custom_cert_location", "/x", "cert-dir", "/x"),
            (S, "jpeg_compression_quality", "80.7", "jpeg-quality", "80"),
            (R, "jpeg_compression_quality", "75", "return-jpeg-quality", "75"),
            (R, "subscriber_timeout", "2", "timeout", "2000"),
            (R, "subscriber_timeout", "0", "timeout", "0"),
            (S, "ssh_tunnel_mode", "pi@10.0.0.2", "ssh-tunnel", "pi@10.0.0.2"),
        ];
        for (role, key, value, property, expected) in cases {
            assert_eq!(
                ok(role, key, value),
                one(property, expected),
                "{key}={value}"
            );
        }
    }

    #[test]
    fn jpeg_compression_takes_a_boolean_or_a_colorspace() {
        use Role::*;
        assert_eq!(
            ok(Sender, "jpeg_compression", "False"),
            one("jpeg-compression", "False")
        );
        assert_eq!(
            ok(Sender, "jpeg_compression", "rgb"),
            vec![
                ("jpeg-compression", "true".to_owned()),
                ("jpeg-colorspace", "RGB".to_owned())
            ]
        );
        assert_eq!(
            ok(Receiver, "jpeg_compression", "true"),
            one("return-jpeg", "true")
        );
        assert!(err(Receiver, "jpeg_compression", "BGR").contains("use jpeg_compression=true"));
        assert!(err(Sender, "jpeg_compression", "yuv").contains("BGR, RGBX"));
    }

    #[test]
    fn bad_values_and_names_say_why() {
        use Role::*;
        assert_eq!(
            err(Sender, "request_timeout", "4s"),
            "request_timeout=4s is not a number of seconds (vidgear's unit), e.g. request_timeout=4"
        );
        assert_eq!(
            err(Sender, "request_timeout", "0.05"),
            "request_timeout=0.05 is in seconds, as in vidgear: the shortest is request_timeout=0.1 (100 ms)"
        );
        assert!(err(Sender, "request_timeout", "-1").contains("not a number of seconds"));
        assert!(err(Sender, "request_timeout", "1e12").contains("not a number of seconds"));
        assert!(err(Sender, "request_timeout", "NaN").contains("not a number of seconds"));
        assert_eq!(
            err(Sender, "jpeg_compression_quality", "high"),
            "jpeg_compression_quality=high is not a number"
        );
        assert_eq!(
            err(Sender, "subscriber_timeout", "2"),
            "netgearsink has no equivalent of vidgear's subscriber_timeout (it is netgearsrc's timeout)"
        );
        assert_eq!(
            err(Receiver, "jpeg_compression_fastupsample", "true"),
            "netgearsrc has no equivalent of vidgear's jpeg_compression_fastupsample (it is netgearsink's jpeg-fastupsample)"
        );
        assert_eq!(
            err(Sender, "ssh_tunnel_pwd", "x"),
            "vidgear's ssh_tunnel_pwd has no URI key: a password does not belong in a URI; set the ssh-password property"
        );
        assert!(err(Receiver, "logging", "True").contains("GST_DEBUG=netgear*:4"));
        assert!(err(Sender, "receive_mode", "True").contains("netgearsrc receives"));
    }

    #[test]
    fn other_names_are_not_vidgear_options() {
        for key in ["request-timeout", "pattern", "jpeg-quality", "nonsense", ""] {
            assert!(translate(Role::Sender, key, "1").is_none(), "{key}");
        }
    }
}
