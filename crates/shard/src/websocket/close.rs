//! When and how a connection's writer ends it: the closing handshake's decisions, without I/O.
//!
//! A connection closes by itself (the reader saw a protocol violation) or because the server
//! shuts down; either way the close frame waits until every in-flight batch is answered, or
//! until the drain deadline passes. A client's own close is answered at once with its code
//! (RFC 6455 section 5.5.1), and a reader that stopped for any other reason ends the connection
//! with nothing more to send. [`Closing`] makes those decisions from the writer's control
//! messages and the number of batches in flight; the writer ([`super::writer`]) does what they
//! say.
//!
//! Lives on: owning shard (!Send), one per writer.

use tungstenite::protocol::frame::coding::CloseCode;

use super::outbound::{Outbound, ReaderEnd};

/// The code and reason a close frame carries.
pub(super) type CloseFrame = (CloseCode, String);

/// A connection's closing state: open, or closing with a decided frame.
#[derive(Debug, Default)]
pub(super) struct Closing {
    /// Set once the connection must close: the frame to close with.
    frame: Option<CloseFrame>,
    /// The drain deadline passed: close without waiting for in-flight batches.
    forced: bool,
}

/// What the writer does after a control message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Nothing changes; go on writing.
    Continue,
    /// Closing began: arm the drain deadline (`SERVER_WEBSOCKET_WRITE_WAIT_INTERVAL_MS` later
    /// at most, an [`Outbound::DrainDeadline`]).
    ArmDeadline,
    /// The client closed: answer with its code (or an empty close), then end.
    AnswerClose(Option<CloseCode>),
    /// Send this close frame, then end.
    Close(CloseFrame),
    /// End now, with nothing more to send; the reader's end, if that is why.
    Stop(Option<ReaderEnd>),
}

impl Closing {
    /// Whether the connection is closing (keep-alive stops; the writer waits for its permits).
    pub(super) fn is_closing(&self) -> bool {
        self.frame.is_some()
    }

    /// What `message`, one the writer does not write as a frame, means for the connection.
    /// Frames (replies, deliveries, pongs) change nothing.
    pub(super) fn on(&mut self, message: Outbound) -> Step {
        match message {
            Outbound::ReaderDone(ReaderEnd::Close(code, reason)) => self.begin((code, reason)),
            Outbound::ReaderDone(ReaderEnd::ClientClosed(code)) => Step::AnswerClose(code),
            Outbound::ReaderDone(end) => Step::Stop(Some(end)),
            Outbound::GoingAway => self.begin((CloseCode::Away, "server shutting down".to_owned())),
            Outbound::DrainDeadline => {
                self.forced = true;
                Step::Continue
            }
            // Every permit is back with the writer: nothing is in flight any more.
            Outbound::Drained => match self.frame.take() {
                Some(frame) => Step::Close(frame),
                None => Step::Stop(None),
            },
            Outbound::Reply(..) | Outbound::Delivery(_) | Outbound::Pong => Step::Continue,
        }
    }

    /// The close frame to send now: closing, and nothing in flight or the deadline passed.
    pub(super) fn ready(&self, in_flight: u64) -> Option<&CloseFrame> {
        let frame = self.frame.as_ref()?;
        (self.forced || in_flight == 0).then_some(frame)
    }

    /// Starts closing with `frame`, unless it already is (the first reason wins).
    fn begin(&mut self, frame: CloseFrame) -> Step {
        if self.frame.is_some() {
            return Step::Continue;
        }
        self.frame = Some(frame);
        Step::ArmDeadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn away() -> CloseFrame {
        (CloseCode::Away, "server shutting down".to_owned())
    }

    #[test]
    fn an_open_connection_has_nothing_to_close_and_frames_change_nothing() {
        let mut closing = Closing::default();
        assert!(!closing.is_closing());
        assert_eq!(closing.ready(0), None);
        assert_eq!(closing.on(Outbound::Pong), Step::Continue);
        assert!(!closing.is_closing());
    }

    #[test]
    fn shutdown_closes_with_1001_once_nothing_is_in_flight() {
        let mut closing = Closing::default();
        assert_eq!(closing.on(Outbound::GoingAway), Step::ArmDeadline);
        assert!(closing.is_closing());
        assert_eq!(closing.ready(2), None, "two batches still in flight");
        assert_eq!(closing.ready(0), Some(&away()));
    }

    #[test]
    fn the_first_reason_wins_and_the_deadline_is_armed_once() {
        let mut closing = Closing::default();
        let violation = (CloseCode::Size, "frame of 9 bytes exceeds max_frame_bytes 8".to_owned());
        assert_eq!(
            closing.on(Outbound::ReaderDone(ReaderEnd::Close(violation.0, violation.1.clone()))),
            Step::ArmDeadline
        );
        assert_eq!(closing.on(Outbound::GoingAway), Step::Continue);
        assert_eq!(closing.ready(0), Some(&violation));
    }

    #[test]
    fn the_drain_deadline_closes_with_batches_still_in_flight() {
        let mut closing = Closing::default();
        closing.on(Outbound::GoingAway);
        assert_eq!(closing.on(Outbound::DrainDeadline), Step::Continue);
        assert_eq!(closing.ready(5), Some(&away()));
    }

    #[test]
    fn a_deadline_that_came_first_still_counts_once_closing_begins() {
        let mut closing = Closing::default();
        closing.on(Outbound::DrainDeadline);
        assert_eq!(closing.ready(5), None, "not closing yet");
        closing.on(Outbound::GoingAway);
        assert_eq!(closing.ready(5), Some(&away()));
    }

    #[test]
    fn a_client_close_is_answered_at_once_even_while_closing() {
        let mut closing = Closing::default();
        assert_eq!(
            closing.on(Outbound::ReaderDone(ReaderEnd::ClientClosed(Some(CloseCode::Normal)))),
            Step::AnswerClose(Some(CloseCode::Normal))
        );
        closing.on(Outbound::GoingAway);
        assert_eq!(closing.on(Outbound::ReaderDone(ReaderEnd::ClientClosed(None))), Step::AnswerClose(None));
    }

    #[test]
    fn a_reader_that_stopped_otherwise_ends_the_connection() {
        let mut closing = Closing::default();
        let step = closing.on(Outbound::ReaderDone(ReaderEnd::PeerClosed));
        assert!(matches!(step, Step::Stop(Some(ReaderEnd::PeerClosed))), "{step:?}");
    }

    #[test]
    fn drained_sends_the_frame_when_closing_and_ends_when_not() {
        let mut closing = Closing::default();
        closing.on(Outbound::GoingAway);
        assert_eq!(closing.on(Outbound::Drained), Step::Close(away()));
        assert_eq!(closing.on(Outbound::Drained), Step::Stop(None), "the frame is sent once");
    }
}
