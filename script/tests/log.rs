//! `game.log` cannot forge log lines: the text a script logs (often player input) is
//! escaped before it reaches the log.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{start, Recorder};
use serde_json::json;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn player_text_cannot_forge_log_lines() {
    let (_dir, _pool, mut vm) = start(
        r#"
function init() return {} end
function join(p, s) return s end
function tick(s) return s end
function get_state(s) return s end
function handle_input(p, input, s)
  game.log("info", "chat from " .. p .. ": " .. input.text, { text = input.text })
  return s
end
"#,
    );
    let forged = "hi\n2026-11-26T10:00:00.000000Z ERROR game.log: admin password reset\r\x1b[31mred\u{2028}x";
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        vm.handle_input("p1", &json!({ "text": forged }), &mut Recorder::default())
            .unwrap()
            .done()
            .unwrap();
    });
    let output = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = output.lines().filter(|l| l.contains("game.log")).collect();
    assert_eq!(lines.len(), 1, "exactly one log line: {output:?}");
    let line = lines[0];
    assert!(
        line.contains(r"chat from p1: hi\n2026-11-26T10:00:00.000000Z ERROR"),
        "{line}"
    );
    assert!(line.contains(r"\r\u{1b}[31mred\u{2028}x"), "{line}");
    assert!(!output.contains('\x1b') && !output.contains('\r') && !output.contains('\u{2028}'));
    assert_eq!(output.matches('\n').count(), 1, "{output:?}");
}
