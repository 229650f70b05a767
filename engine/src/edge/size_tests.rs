//! What an idle WebSocket costs in the executor: the session task's future (boxed once per
//! socket by the panic boundary) and the pieces it holds by value. Built on a real glommio
//! executor with a real TCP socket, so the stream type is the one the server uses.
//!
//! These are the test build's sizes (an unoptimised build's futures are larger than a release
//! build's); the release figures are in `bench-results/capacity-idle.md`. The bound catches a
//! change that puts a large value (a buffer, the request head, a second copy of the connection,
//! an inline router future) into every socket's state.

use std::mem::{size_of, size_of_val};
use std::path::Path;

use glommio::net::{TcpListener, TcpStream};

use super::wsconn::WsConn;
use crate::services::session::Session;
use crate::services::sim::Sim;
use crate::services::Settings;
use crate::wire::Wire;

/// The test build's session task was 1,008 bytes when this was written, the release build's
/// 1,024 (2,928 before the handshake moved to a task of its own and the loop stopped holding
/// values it had taken apart; see `bench-results/capacity-idle.md`). 1,024 is also a size class
/// of the allocator: a few bytes more cost 256.
const SESSION_TASK_MAX: usize = 1_024;

#[test]
fn an_idle_session_task_is_small() {
    let ex = glommio::LocalExecutorBuilder::default()
        .make()
        .expect("glommio executor");
    ex.run(async {
        let arena = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/arena");
        let sim = Sim::new(1, &arena, Settings::default());
        let shard = sim.shards[0].clone();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let stream = listener.accept().await.expect("accept");
        let conn = WsConn::new(stream, Wire::Json, 1 << 20, Vec::new());
        let conn_size = size_of_val(&conn);
        let task = super::ws::run(shard, conn, addr);
        let task_size = size_of_val(&task);
        drop(task);
        eprintln!(
            "session task {task_size} B (Session {} B, WsConn {conn_size} B)",
            size_of::<Session>(),
        );
        assert!(
            task_size <= SESSION_TASK_MAX,
            "the session task grew to {task_size} bytes"
        );
    });
}
