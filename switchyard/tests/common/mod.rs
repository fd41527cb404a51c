//! What the binary's tests share: running the `switchyard` binary against a stack.

use std::process::{Command, Output};
use switchyard_tests::Stack;

/// `switchyard ARGS` as an operator of `stack`'s control plane runs it.
pub fn cli(stack: &Stack, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("--server")
        .arg(format!("http://{}", stack.cp.addr))
        .env("SWITCHYARD_TOKEN", &stack.cp.token)
        .args(args)
        .output()
        .expect("the switchyard binary runs")
}

/// What a command printed, once it succeeded.
pub fn stdout(out: &Output) -> &[u8] {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    &out.stdout
}

/// The JSON a successful command printed.
#[allow(dead_code, reason = "not every test binary reads JSON")]
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(stdout(out)).expect("JSON output")
}
