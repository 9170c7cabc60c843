// SPDX-License-Identifier: MPL-2.0
//! Messages only Python's json writes (NaN, ±Infinity, lone surrogates, integers beyond 64
//! bits, 1.2 MB, deep nesting) travel vidgear → netgearsrc → netgearsink → vidgear: every
//! frame arrives, the bus text reads back in Python as the value sent, and the vidgear
//! receiver behind our relaying sink gets equal values.

use crate::common::*;
use gst::prelude::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The messages, built in Python; `--list` prints `json.dumps` of each, one a line.
const MESSAGES: &str = r#"
def messages():
    nested300, nested900 = 1, "deep"
    for _ in range(300):
        nested300 = [nested300]
    for _ in range(900):
        nested900 = {"d": nested900}
    return [
        float("nan"), float("inf"), float("-inf"), "\ud800", "x\udfff\ud800y",
        2 ** 70, -(2 ** 100), "m" * 1_200_000, nested300, nested900,
        {"mix": [float("nan"), float("-inf"), "\udc00", 2 ** 65, 1e-400, 1e16]},
    ]
"#;

/// A vidgear sender (pattern 1, bidirectional, no JPEG) sending one 8×8 frame per message;
/// prints the messages, then what each `send()` returned.
const SENDER: &str = r#"
import json, sys
import numpy as np
from vidgear.gears import NetGear
port = sys.argv[1]
server = NetGear(address="127.0.0.1", port=port, pattern=1, receive_mode=False, logging=False,
                 bidirectional_mode=True, jpeg_compression=False, request_timeout=10, max_retries=1)
returns = [server.send(np.full((8, 8, 3), i, dtype=np.uint8), message=m)
           for i, m in enumerate(messages())]
server.close()
for m in messages():
    print(json.dumps(m), flush=True)
for r in returns:
    print("RETURNED " + json.dumps(r), flush=True)
"#;

/// A vidgear receiver (pattern 1, bidirectional): prints `json.dumps` of each message.
const RECEIVER: &str = r#"
import json, sys, threading, os
from vidgear.gears import NetGear
client = NetGear(address="127.0.0.1", port=sys.argv[1], pattern=1, receive_mode=True,
                 logging=False, bidirectional_mode=True, jpeg_compression=False)
print("READY", flush=True)
threading.Timer(60, lambda: os._exit(3)).start()
got = []
while True:
    # Only collect here: vidgear drops frames still queued when the termination arrives.
    item = client.recv()
    if item is None:
        break
    got.append(item)
client.close()
for message, frame in got:
    print("GOT %d %s" % (frame[0, 0, 0], json.dumps(message)), flush=True)
os._exit(0)
"#;

/// The source's `return-data`: JSON that only Python reads, in json.dumps' spelling.
const RETURN_DATA: &str = r#"{"r": [NaN, -Infinity, 36893488147419103232, "\udfff"]}"#;

/// Compares, in Python, each received text (`json.loads`) with the `json.dumps` text sent.
const COMPARE: &str = r#"
import json, sys
sent, got = json.load(sys.stdin)
assert len(sent) == len(got), (len(sent), len(got))
for i, (s, g) in enumerate(zip(sent, got)):
    assert json.dumps(json.loads(g)) == s, (i, s[:80], g[:80])
print("SAME")
"#;

fn python_lines(script: &str, args: &[String]) -> Vec<String> {
    let program = format!("{MESSAGES}{script}");
    let argv: Vec<&str> = ["-c", program.as_str()]
        .into_iter()
        .chain(args.iter().map(String::as_str))
        .collect();
    python_stdout(&argv).lines().map(str::to_owned).collect()
}

fn assert_same_in_python(sent: &[String], got: &[String]) {
    let mut child = Command::new(python())
        .args(["-c", COMPARE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    let input = serde_json::to_vec(&(sent, got)).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "SAME",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_only_messages_pass_vidgear_to_us_and_back_to_vidgear() {
    init();
    let (first, second) = (free_port(), free_port());
    let mut receiver = Command::new(python())
        .arg("-c")
        .arg(RECEIVER)
        .arg(second.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python");
    let mut lines = BufReader::new(receiver.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "READY");

    let relay = launch(&format!(
        "netgearsrc name=src port={first} address=127.0.0.1 pattern=1 bidirectional=true \
         ! netgearsink name=sink port={second} address=127.0.0.1 pattern=1 bidirectional=true \
           jpeg-compression=false sync=false"
    ));
    relay
        .by_name("src")
        .unwrap()
        .set_property("return-data", RETURN_DATA);
    let posted = Posted::record(&relay);
    relay.set_state(gst::State::Playing).unwrap();

    let (returned, sent): (Vec<String>, Vec<String>) = python_lines(SENDER, &[first.to_string()])
        .into_iter()
        .partition(|l| l.starts_with("RETURNED "));
    assert_eq!(sent.len(), 11);
    // return-data is Python JSON too (NaN, a 65-bit integer), sent with every reply.
    let returned: Vec<&str> = returned.iter().map(|l| &l["RETURNED ".len()..]).collect();
    assert_eq!(returned, [RETURN_DATA; 11]);
    assert!(matches!(
        wait_end(&relay, Duration::from_secs(30)),
        Outcome::Eos
    ));
    let got_vidgear: Vec<String> = lines
        .map_while(Result::ok)
        .filter_map(|l| l.strip_prefix("GOT ").map(str::to_owned))
        .enumerate()
        .map(|(i, l)| {
            // Each frame is filled with its index: the messages come in order.
            let (index, message) = l.split_once(' ').unwrap();
            assert_eq!(index, i.to_string(), "frame {i} was lost");
            message.to_owned()
        })
        .collect();
    let status = receiver.wait().unwrap();
    let src = relay.by_name("src").unwrap();
    let stats = src.property::<gst::Structure>("stats");
    let _ = relay.set_state(gst::State::Null);

    assert_eq!(stats.get::<u64>("malformed").unwrap(), 0, "{stats}");
    assert_eq!(stats.get::<u64>("frames").unwrap(), 11, "{stats}");
    let on_bus: Vec<String> = posted
        .named("netgear-message")
        .iter()
        .map(|s| s.get::<String>("message").unwrap())
        .collect();
    // The bus text is what Python wrote (NaN included), byte for byte.
    assert_eq!(on_bus, sent);
    assert_same_in_python(&sent, &on_bus);
    assert!(status.success(), "vidgear's receiver did not end cleanly");
    assert_same_in_python(&sent, &got_vidgear);
}
