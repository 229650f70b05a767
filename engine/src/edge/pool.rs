//! The shard's socket buffers. A WebSocket owns no read or write buffer of its own: it borrows
//! one from here while bytes are moving and gives it back as soon as the socket goes quiet, so
//! memory follows the sockets that are active in this instant, not the sockets that are open.
//! An idle player costs its session state and the kernel's socket, nothing more.
//!
//! One pool per shard thread (a `thread_local`: each shard is one glommio executor on one
//! thread, and a buffer never crosses threads), no locks. Only a bounded number of free buffers
//! is kept; past that a returned buffer is freed.

use std::cell::RefCell;

/// Size of a read buffer: a hundred pipelined client frames (inputs are ~100 bytes) in one
/// `recv`, as tungstenite's 8 KiB buffer used to take, with room for a burst.
pub(crate) const READ_BUF: usize = 16 * 1024;
/// A write buffer is written out when it reaches this; `flush` writes whatever is left.
pub(crate) const WRITE_HIGH: usize = 64 * 1024;
/// Free buffers kept per kind. Sockets hold a buffer only between a read (or a write) and the
/// end of that batch, so this many covers every socket a shard serves at once at full speed;
/// more would be memory held for nobody.
const KEEP: usize = 64;
/// A buffer that grew past this for one large frame is freed rather than kept.
const KEEP_CAPACITY: usize = 4 * WRITE_HIGH;

#[derive(Default)]
struct Free {
    read: Vec<Vec<u8>>,
    write: Vec<Vec<u8>>,
}

thread_local! {
    static FREE: RefCell<Free> = RefCell::new(Free::default());
}

/// A read buffer of at least [`READ_BUF`] initialised bytes (`len() == READ_BUF` or more): reads
/// go straight into it without zeroing it first.
pub(crate) fn take_read() -> Vec<u8> {
    FREE.with(|f| f.borrow_mut().read.pop())
        .unwrap_or_else(|| vec![0; READ_BUF])
}

/// An empty write buffer with room for a batch of frames.
pub(crate) fn take_write() -> Vec<u8> {
    FREE.with(|f| f.borrow_mut().write.pop())
        .unwrap_or_else(|| Vec::with_capacity(WRITE_HIGH))
}

/// Returns a read buffer taken with [`take_read`].
pub(crate) fn give_read(buf: Vec<u8>) {
    if buf.len() != READ_BUF {
        return;
    }
    FREE.with(|f| {
        let mut f = f.borrow_mut();
        if f.read.len() < KEEP {
            f.read.push(buf);
        }
    });
}

/// Returns a write buffer taken with [`take_write`]; its contents are dropped.
pub(crate) fn give_write(mut buf: Vec<u8>) {
    if buf.capacity() > KEEP_CAPACITY {
        return;
    }
    buf.clear();
    FREE.with(|f| {
        let mut f = f.borrow_mut();
        if f.write.len() < KEEP {
            f.write.push(buf);
        }
    });
}

/// Free buffers held by this thread's pool (read, write).
#[cfg(test)]
pub(crate) fn free() -> (usize, usize) {
    FREE.with(|f| {
        let f = f.borrow();
        (f.read.len(), f.write.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_and_the_pool_stays_bounded() {
        let bufs: Vec<Vec<u8>> = (0..KEEP + 10).map(|_| take_read()).collect();
        assert!(bufs.iter().all(|b| b.len() == READ_BUF));
        for b in bufs {
            give_read(b);
        }
        assert_eq!(free().0, KEEP);
        let reused = take_read();
        assert_eq!(reused.len(), READ_BUF);
        assert_eq!(free().0, KEEP - 1);
        // A grown read buffer is not kept (its size no longer matches); nor a huge write one.
        let mut grown = reused;
        grown.resize(READ_BUF * 3, 0);
        give_read(grown);
        assert_eq!(free().0, KEEP - 1);
        let mut w = take_write();
        w.extend_from_slice(b"frame");
        give_write(w);
        let w = take_write();
        assert!(w.is_empty(), "a returned write buffer comes back empty");
        let writes = free().1;
        give_write(Vec::with_capacity(KEEP_CAPACITY + 1));
        assert_eq!(
            free().1,
            writes,
            "a write buffer grown past the cap is freed"
        );
        give_write(w);
        assert_eq!(free().1, writes + 1);
    }
}
