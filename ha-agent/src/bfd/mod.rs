//! BFD (RFC 5880 asynchronous mode, single hop per RFC 5881): the control packet codec, the
//! sans-IO session state machine and the plan of the kernel's paced transmission. The
//! daemon owns the sockets and the clock.

pub mod pace;
pub mod packet;
pub mod session;

pub use packet::{Control, Diag, State};
pub use session::{Action, Config, Session};
