//! A minimal pipe (fs/pipe.c), enough for `splice()` from a socket into a pipe.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;

/// `PIPE_DEF_BUFFERS * PAGE_SIZE`.
pub const PIPE_CAPACITY: usize = 16 * 4096;

/// The shared buffer.
#[derive(Default)]
pub struct PipeBuf {
    /// Bytes in the pipe.
    pub data: Mutex<VecDeque<u8>>,
}

/// One end of a pipe.
pub struct PipeEnd {
    /// The buffer.
    pub buf: Arc<PipeBuf>,
    /// True for the write end.
    pub write: bool,
}
