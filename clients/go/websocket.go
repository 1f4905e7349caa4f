package raccoon

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/types/known/timestamppb"
	pb "raccoon/clients/go/raccoonpb"
)

// Ack is the outcome of one WebSocket batch, delivered on WebSocketClient.Acks.
type Ack struct {
	ReqGUID string
	// Response is the server's reply; nil when the client gave up without one.
	Response *Response
	// Err is nil when the server answered SUCCESS; otherwise a *ServerError (an error reply),
	// a *RejectedError (the connection was refused while the batch was in flight),
	// ErrAckTimeout (no reply on any attempt) or ErrClosed.
	Err error
	// Attempts is how many times the batch was sent (resends after a reconnect not counted).
	Attempts int
	// Latency is from the batch's first write to this outcome.
	Latency time.Duration
}

// WebSocketClient keeps one WebSocket connection to /api/v1/events and sends batches on it:
// binary protobuf frames (EncodingProto) or JSON text frames (EncodingJSON).
//
// Send returns once the batch is written (or queued while the connection is down) with a nil
// Response: the server's reply arrives later on Acks, matched by req_guid. Send's error is for
// batches not taken at all (serialization, a closed client, a guid still in flight, a refused
// connection); once Send returns nil, the batch gets exactly one Ack.
//
// Acknowledgements: Acks has room for Options.AckBuffer outcomes. The connection never waits
// for it: when it is full, the newest outcome is dropped and counted (DroppedAcks, StatsD
// acks_dropped). An application that does not read Acks loses nothing else.
//
// Retries: a batch without a reply within Options.Timeout is written again with the same
// req_guid, and so is one answered with a retryable code (after the retry backoff), up to
// Retry.MaxAttempts writes; the server drops the copy as a duplicate when
// SERVER_BATCH_DEDUP_IN_CONNECTION_ENABLED is on (dedup is per connection). Then the batch's Ack
// carries ErrAckTimeout or the last reply.
//
// Keep-alive and reconnect: the client pings every Options.PingInterval, answers the server's
// pings, and drops a connection that sends nothing (no pong, no frame) for PingInterval +
// PongWait. A dropped connection is dialled again with Options.Reconnect's backoff, and every
// batch still waiting for its reply is written again on the new connection (at least once: the
// server's dedup does not span connections). A refusal after the upgrade (codes 4 and 5) fails
// the batches in flight with a *RejectedError, makes Send return it until a new connection is
// made, and is retried with the reconnect backoff.
//
// It is safe for concurrent use.
type WebSocketClient struct {
	opts   Options
	stats  stats
	dialer *websocket.Dialer

	mu         sync.Mutex
	conn       *wsConn
	pending    map[string]*wsBatch
	closed     bool
	refused    *RejectedError
	refusals   int // refusals in a row: where the reconnect backoff resumes
	app        *App
	acks       chan Ack
	done       chan struct{}
	wg         sync.WaitGroup
	dropped    atomic.Uint64
	reconnects atomic.Uint64
}

var _ Client = (*WebSocketClient)(nil)

// wsConn is one connection with its writer lock (gorilla allows one writer at a time).
type wsConn struct {
	ws      *websocket.Conn
	writeMu sync.Mutex
	done    chan struct{}
	once    sync.Once
}

func (w *wsConn) write(mt int, data []byte, deadline time.Time) error {
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	_ = w.ws.SetWriteDeadline(deadline)
	return w.ws.WriteMessage(mt, data)
}

// shut closes the socket once; the reader then ends and reports the disconnect.
func (w *wsConn) shut() {
	w.once.Do(func() {
		close(w.done)
		_ = w.ws.Close()
	})
}

// wsBatch is a batch waiting for its reply.
type wsBatch struct {
	req      *pb.SendEventRequest
	attempts int
	first    time.Time
	timer    *time.Timer // ack timeout of the current attempt
	retry    *time.Timer // pending resend after a retryable reply
}

// NewWebSocket connects to Options.URL (default ws://127.0.0.1:8080/api/v1/events) and
// returns the client, or the dial error (the HTTP status and body when the upgrade was
// refused).
func NewWebSocket(opts ...ClientOption) (*WebSocketClient, error) {
	o := buildOptions("ws://127.0.0.1:8080/api/v1/events", opts)
	if !strings.HasPrefix(o.URL, "ws://") && !strings.HasPrefix(o.URL, "wss://") {
		return nil, fmt.Errorf("raccoon: WebSocket url %q: want ws:// or wss://", o.URL)
	}
	c := &WebSocketClient{
		opts:    o,
		stats:   stats{o.Statter},
		dialer:  &websocket.Dialer{HandshakeTimeout: o.DialTimeout, Proxy: http.ProxyFromEnvironment, TLSClientConfig: o.TLS},
		pending: map[string]*wsBatch{},
		acks:    make(chan Ack, o.AckBuffer),
		done:    make(chan struct{}),
	}
	conn, err := c.dial()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.start(conn)
	c.mu.Unlock()
	return c, nil
}

// Acks is the channel of batch outcomes. It is closed by Close.
func (c *WebSocketClient) Acks() <-chan Ack { return c.acks }

// DroppedAcks is how many outcomes were dropped because Acks was full.
func (c *WebSocketClient) DroppedAcks() uint64 { return c.dropped.Load() }

// Reconnects is how many times the client connected again after a dropped connection.
func (c *WebSocketClient) Reconnects() uint64 { return c.reconnects.Load() }

// InFlight is how many batches wait for their reply.
func (c *WebSocketClient) InFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// Connected reports whether a connection is up.
func (c *WebSocketClient) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// SetAppInfo sets the App sent (as X-App-* headers) with the next connection's upgrade
// request; the server sees the headers of the connection, so it applies from the next
// reconnect on.
func (c *WebSocketClient) SetAppInfo(app *App) {
	c.mu.Lock()
	c.app = app
	c.mu.Unlock()
}

// Send sends events with a new request guid; see SendContext.
func (c *WebSocketClient) Send(events []*Event) (string, *Response, error) {
	return c.SendContext(context.Background(), "", events)
}

// SendContext sends events as one batch with request guid reqGUID ("" generates a UUIDv4). It
// returns the guid and a nil Response; the reply comes on Acks. ctx only guards the call
// itself.
func (c *WebSocketClient) SendContext(ctx context.Context, reqGUID string, events []*Event) (string, *Response, error) {
	start := time.Now()
	defer func() { c.stats.timing(StatSentTime, time.Since(start)) }()
	if reqGUID == "" {
		reqGUID = uuid.NewString()
	}
	if err := ctx.Err(); err != nil {
		return reqGUID, nil, err
	}
	req, err := buildRequest(c.opts.Serializer, reqGUID, events, start)
	if err != nil {
		return reqGUID, nil, err
	}
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return reqGUID, nil, ErrClosed
	case c.conn == nil && c.refused != nil:
		err := c.refused
		c.mu.Unlock()
		return reqGUID, nil, err
	case c.pending[reqGUID] != nil:
		c.mu.Unlock()
		return reqGUID, nil, ErrDuplicateGUID
	}
	b := &wsBatch{req: req, attempts: 1, first: start}
	c.pending[reqGUID] = b
	b.timer = time.AfterFunc(c.opts.Timeout, func() { c.onTimeout(reqGUID, b) })
	conn := c.conn
	mt, frame, err := c.frame(b)
	c.mu.Unlock()
	if err != nil {
		return reqGUID, nil, err
	}
	if conn != nil {
		c.send(conn, mt, frame)
	}
	return reqGUID, nil, nil
}

// frame encodes b for its next write, with a fresh sent_time. c.mu is held.
func (c *WebSocketClient) frame(b *wsBatch) (int, []byte, error) {
	b.req.SentTime = timestamppb.Now()
	data, err := encodeRequest(b.req, c.opts.Encoding)
	if c.opts.Encoding == EncodingJSON {
		return websocket.TextMessage, data, err
	}
	return websocket.BinaryMessage, data, err
}

// send writes one frame; a failed write drops the connection (the batch is written again
// after the reconnect).
func (c *WebSocketClient) send(conn *wsConn, mt int, frame []byte) {
	if err := conn.write(mt, frame, time.Now().Add(c.opts.Timeout)); err != nil {
		c.opts.Logger.Errorf("websocket: write failed, reconnecting: %v", err)
		conn.shut()
		return
	}
	c.stats.inc(StatBytesSent, int64(len(frame)))
}

// resend writes b again on the current connection, counting an attempt.
func (c *WebSocketClient) resend(guid string, b *wsBatch) {
	c.mu.Lock()
	if c.pending[guid] != b {
		c.mu.Unlock()
		return
	}
	b.attempts++
	b.timer.Reset(c.opts.Timeout)
	conn := c.conn
	mt, frame, err := c.frame(b)
	c.mu.Unlock()
	if err == nil && conn != nil {
		c.send(conn, mt, frame)
	}
}

func (c *WebSocketClient) onTimeout(guid string, b *wsBatch) {
	c.mu.Lock()
	if c.pending[guid] != b {
		c.mu.Unlock()
		return
	}
	if b.attempts >= c.opts.Retry.MaxAttempts {
		c.finish(guid, b, nil, ErrAckTimeout)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.opts.Logger.Infof("websocket: no reply for batch %s within %v, sending it again", guid, c.opts.Timeout)
	c.resend(guid, b)
}

// finish removes b and delivers its outcome without ever waiting. c.mu is held.
func (c *WebSocketClient) finish(guid string, b *wsBatch, resp *Response, err error) {
	delete(c.pending, guid)
	b.timer.Stop()
	if b.retry != nil {
		b.retry.Stop()
	}
	latency := time.Since(b.first)
	if resp != nil {
		c.stats.timing(StatAckTime, latency)
	}
	select {
	case c.acks <- Ack{ReqGUID: guid, Response: resp, Err: err, Attempts: b.attempts, Latency: latency}:
	default:
		n := c.dropped.Add(1)
		c.stats.inc(StatAcksDropped, 1)
		if n == 1 || n%1000 == 0 {
			c.opts.Logger.Errorf("websocket: ack channel full (capacity %d): %d acks dropped so far", cap(c.acks), n)
		}
	}
}

// onReply matches a reply to its batch.
func (c *WebSocketClient) onReply(conn *wsConn, resp *Response) {
	guid := resp.ReqGUID()
	c.mu.Lock()
	defer c.mu.Unlock()
	if guid == "" && (resp.Code == CodeMaxConnectionLimit || resp.Code == CodeMaxUserLimit) {
		rej := &RejectedError{Code: resp.Code, Reason: resp.Reason}
		c.refused = rej
		c.refusals++
		c.opts.Logger.Errorf("websocket: %v", rej)
		for g, b := range c.pending {
			c.finish(g, b, resp, rej)
		}
		if c.conn == conn {
			c.conn = nil // Send fails fast from now on; the reader's end reconnects
		}
		go conn.shut()
		return
	}
	c.refusals = 0
	b := c.pending[guid]
	if b == nil {
		return // a late reply to a batch already answered (e.g. the copy after a timeout)
	}
	if resp.Status == StatusSuccess {
		c.finish(guid, b, resp, nil)
		return
	}
	if resp.Code.Retryable() && b.attempts < c.opts.Retry.MaxAttempts && b.retry == nil {
		b.timer.Stop()
		wait := c.opts.Retry.wait(b.attempts)
		c.opts.Logger.Infof("websocket: batch %s answered %v (%s), sending it again in %v", guid, resp.Code, resp.Reason, wait)
		b.retry = time.AfterFunc(wait, func() {
			c.mu.Lock()
			b.retry = nil
			c.mu.Unlock()
			c.resend(guid, b)
		})
		return
	}
	if b.retry != nil {
		return // a retry is already scheduled
	}
	c.finish(guid, b, resp, &ServerError{Response: resp})
}
