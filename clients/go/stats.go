package raccoon

import (
	"time"

	"github.com/cactus/go-statsd-client/v5/statsd"
)

// The StatsD names the clients emit (prefixed by the prefix given to WithStatsD).
const (
	// StatSentTime is the time a Send call took, serialization and retries included (ms timing).
	StatSentTime = "sent_tt_ms"
	// StatAckTime is the time from a batch's first write to its acknowledgement (ms timing).
	StatAckTime = "ack_tt_ms"
	// StatBytesSent counts request bytes written (every attempt).
	StatBytesSent = "total_bytes_sent"
	// StatBytesReceived counts reply bytes read.
	StatBytesReceived = "total_bytes_received"
	// StatBytesRecievedAlias is the same counter under the design's spelling, sent alongside.
	StatBytesRecievedAlias = "total_bytes_recieved"
	// StatConnErrors counts failed dials, dropped connections and transport errors.
	StatConnErrors = "total_conn_err"
	// StatAcksDropped counts WebSocket acknowledgements dropped because the ack channel was full.
	StatAcksDropped = "acks_dropped"
)

// stats sends the client statistics; with no statter (the default) it does nothing.
type stats struct{ s statsd.Statter }

func (st stats) timing(name string, d time.Duration) {
	if st.s != nil {
		_ = st.s.TimingDuration(name, d, 1)
	}
}

func (st stats) inc(name string, n int64) {
	if st.s != nil {
		_ = st.s.Inc(name, n, 1)
	}
}

func (st stats) received(n int) {
	st.inc(StatBytesReceived, int64(n))
	st.inc(StatBytesRecievedAlias, int64(n))
}
