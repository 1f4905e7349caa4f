package raccoon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// dial opens one connection with the configured headers, the App and the User-Agent.
func (c *WebSocketClient) dial() (*wsConn, error) {
	h := http.Header{}
	for k, vs := range c.opts.Headers {
		h[k] = append([]string(nil), vs...)
	}
	c.mu.Lock()
	for k, v := range c.app.headers() {
		h.Set(k, v)
	}
	c.mu.Unlock()
	h.Set("User-Agent", UserAgent())
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.DialTimeout)
	defer cancel()
	ws, resp, err := c.dialer.DialContext(ctx, c.opts.URL, h)
	if err != nil {
		c.stats.inc(StatConnErrors, 1)
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			return nil, &TransportError{Op: "dial " + c.opts.URL, Err: fmt.Errorf("upgrade refused: http %d: %s", resp.StatusCode, body)}
		}
		return nil, &TransportError{Op: "dial " + c.opts.URL, Err: err}
	}
	return &wsConn{ws: ws, done: make(chan struct{})}, nil
}

// start makes conn the current connection and runs its reader and pinger. c.mu is held.
func (c *WebSocketClient) start(conn *wsConn) {
	c.conn = conn
	silence := c.opts.PingInterval + c.opts.PongWait
	alive := func() { _ = conn.ws.SetReadDeadline(time.Now().Add(silence)) }
	alive()
	conn.ws.SetPongHandler(func(string) error { alive(); return nil })
	conn.ws.SetPingHandler(func(data string) error {
		alive()
		err := conn.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(c.opts.Timeout))
		var ne net.Error
		if errors.Is(err, websocket.ErrCloseSent) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil
		}
		return err
	})
	conn.ws.SetReadLimit(maxReplyBytes)
	c.wg.Add(2)
	go c.read(conn, alive)
	go c.ping(conn)
}

func (c *WebSocketClient) read(conn *wsConn, alive func()) {
	defer c.wg.Done()
	for {
		mt, data, err := conn.ws.ReadMessage()
		if err != nil {
			c.disconnected(conn, err)
			return
		}
		alive()
		c.stats.received(len(data))
		encoding := EncodingProto
		if mt == websocket.TextMessage {
			encoding = EncodingJSON
		}
		resp, err := decodeResponse(data, encoding)
		if err != nil {
			c.opts.Logger.Errorf("websocket: %v", err)
			continue
		}
		c.onReply(conn, resp)
	}
}

func (c *WebSocketClient) ping(conn *wsConn) {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-conn.done:
			return
		case <-t.C:
			if err := conn.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.opts.Timeout)); err != nil {
				c.opts.Logger.Errorf("websocket: ping failed: %v", err)
				conn.shut()
				return
			}
		}
	}
}

// disconnected handles the end of conn: unless the client is closing, it reconnects.
func (c *WebSocketClient) disconnected(conn *wsConn, err error) {
	conn.shut()
	c.mu.Lock()
	current := c.conn == conn || (c.conn == nil && c.refused != nil)
	if c.conn == conn {
		c.conn = nil
	}
	closing := c.closed
	refused := c.refused != nil
	streak := c.refusals
	c.mu.Unlock()
	if !current || closing {
		return
	}
	if !refused {
		c.stats.inc(StatConnErrors, 1)
		c.opts.Logger.Errorf("websocket: connection lost, reconnecting: %v", err)
	}
	c.wg.Add(1)
	go c.reconnect(streak)
}

// reconnect dials with backoff (resuming after streak refusals in a row) until it connects or the client closes, then writes every
// batch still waiting for its reply again.
func (c *WebSocketClient) reconnect(streak int) {
	defer c.wg.Done()
	for n := 1; ; n++ {
		select {
		case <-c.done:
			return
		case <-time.After(c.opts.Reconnect.next(n + streak)):
		}
		conn, err := c.dial()
		if err != nil {
			if n == 1 || n%10 == 0 {
				c.opts.Logger.Errorf("websocket: reconnect attempt %d: %v", n, err)
			}
			continue
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			conn.shut()
			return
		}
		c.refused = nil
		c.start(conn)
		type out struct {
			mt    int
			frame []byte
		}
		var frames []out
		for _, b := range c.pending {
			if mt, frame, err := c.frame(b); err == nil {
				frames = append(frames, out{mt, frame})
			}
		}
		c.mu.Unlock()
		c.reconnects.Add(1)
		c.opts.Logger.Infof("websocket: reconnected after %d attempts; writing %d batches again", n, len(frames))
		for _, f := range frames {
			c.send(conn, f.mt, f.frame)
		}
		return
	}
}

// Close sends a close frame, ends the connection and the reconnect loop, delivers ErrClosed
// for every batch still waiting, and closes Acks. Later calls do nothing.
func (c *WebSocketClient) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	conn := c.conn
	c.conn = nil
	for g, b := range c.pending {
		c.finish(g, b, nil, ErrClosed)
	}
	c.mu.Unlock()
	if conn != nil {
		conn.writeMu.Lock()
		_ = conn.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		conn.writeMu.Unlock()
		conn.shut()
	}
	finished := make(chan struct{})
	go func() { c.wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		c.opts.Logger.Errorf("websocket: close: goroutines still running after 5s")
	}
	c.mu.Lock()
	close(c.acks)
	c.mu.Unlock()
	return nil
}
