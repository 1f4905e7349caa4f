package raccoon_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	raccoon "raccoon/clients/go"
)

// TestRealServerAllTransportsAndEncodings sends batches over each transport and encoding,
// with both serializers, and reads every event back from Kafka byte for byte.
func TestRealServerAllTransportsAndEncodings(t *testing.T) {
	srv := startServer(t)
	cases := []struct {
		name     string
		new      func(...raccoon.ClientOption) (raccoon.Client, error)
		encoding raccoon.Encoding
	}{
		{"ws-proto", newWS(srv), raccoon.EncodingProto},
		{"ws-json", newWS(srv), raccoon.EncodingJSON},
		{"rest-proto", newRest(srv), raccoon.EncodingProto},
		{"rest-json", newRest(srv), raccoon.EncodingJSON},
		{"grpc-proto", newGrpc(srv), raccoon.EncodingProto},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			typ := eventType(tc.name)
			var want [][]byte
			// PROTO serializer: protobuf messages as event bytes.
			pc, err := tc.new(raccoon.WithEncoding(tc.encoding), raccoon.WithHeader("X-User-ID", tc.name+"-p"), quiet)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			var events []*raccoon.Event
			for i := 0; i < 3; i++ {
				m := timestamppb.New(time.Unix(int64(1000+i), 7))
				b, _ := proto.Marshal(m)
				want = append(want, b)
				events = append(events, &raccoon.Event{Type: typ, Data: m})
			}
			sendAndCheck(t, pc, events)
			// JSON serializer over the same transport and encoding.
			jc, err := tc.new(raccoon.WithEncoding(tc.encoding), raccoon.WithSerializer(raccoon.JSON), raccoon.WithHeader("X-User-ID", tc.name+"-j"), quiet)
			if err != nil {
				t.Fatal(err)
			}
			defer jc.Close()
			events = nil
			for i := 0; i < 2; i++ {
				d := map[string]interface{}{"page": fmt.Sprintf("p%d", i), "n": i}
				b, _ := raccoon.JSON(d)
				want = append(want, b)
				events = append(events, &raccoon.Event{Type: typ, Data: d})
			}
			sendAndCheck(t, jc, events)
			sameSet(t, consume(t, topicOf(typ), len(want), 500*time.Millisecond), want)
		})
	}
}

func newWS(srv *realServer) func(...raccoon.ClientOption) (raccoon.Client, error) {
	return func(o ...raccoon.ClientOption) (raccoon.Client, error) {
		return raccoon.NewWebSocket(append([]raccoon.ClientOption{raccoon.WithURL(srv.WSURL())}, o...)...)
	}
}

func newRest(srv *realServer) func(...raccoon.ClientOption) (raccoon.Client, error) {
	return func(o ...raccoon.ClientOption) (raccoon.Client, error) {
		return raccoon.NewRest(append([]raccoon.ClientOption{raccoon.WithURL(srv.RestURL())}, o...)...)
	}
}

func newGrpc(srv *realServer) func(...raccoon.ClientOption) (raccoon.Client, error) {
	return func(o ...raccoon.ClientOption) (raccoon.Client, error) {
		return raccoon.NewGrpc(append([]raccoon.ClientOption{raccoon.WithAddr(srv.GRPCAddr)}, o...)...)
	}
}

// sendAndCheck sends one batch and checks its reply (from Send, or from Acks for WebSocket).
func sendAndCheck(t *testing.T, c raccoon.Client, events []*raccoon.Event) {
	t.Helper()
	guid, resp, err := c.Send(events)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if ws, ok := c.(*raccoon.WebSocketClient); ok {
		if resp != nil {
			t.Fatal("WebSocket Send returned a response")
		}
		a := waitAck(t, ws, 20*time.Second)
		if a.Err != nil || a.ReqGUID != guid {
			t.Fatalf("ack %+v", a)
		}
		resp = a.Response
	}
	if resp.Status != raccoon.StatusSuccess || resp.Code != raccoon.CodeOK || resp.ReqGUID() != guid || resp.SentTime == 0 {
		t.Fatalf("reply %+v for %s", resp, guid)
	}
}

// TestRealServerWebSocketRetryIsDeduplicated loses the server's first reply (a proxy drops
// it): the client sends the batch again with the same guid after its ack timeout, the server
// (dedup on) answers the copy without publishing it, and Kafka holds one copy.
func TestRealServerWebSocketRetryIsDeduplicated(t *testing.T) {
	srv := startServer(t, "SERVER_BATCH_DEDUP_IN_CONNECTION_ENABLED=true")
	p := startDropProxy(t, srv.HTTPAddr, 1)
	c, err := raccoon.NewWebSocket(raccoon.WithURL("ws://"+p.Addr()+"/api/v1/events"), raccoon.WithHeader("X-User-ID", "dedup"),
		raccoon.WithTimeout(time.Second), fastRetry(3), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	typ := eventType("dedup")
	guid, _, err := c.Send([]*raccoon.Event{{Type: typ, Data: []byte("once")}})
	if err != nil {
		t.Fatal(err)
	}
	a := waitAck(t, c, 20*time.Second)
	if a.Err != nil || a.ReqGUID != guid || a.Attempts != 2 {
		t.Fatalf("ack %+v", a)
	}
	if p.Dropped() != 1 {
		t.Fatalf("proxy dropped %d replies", p.Dropped())
	}
	got := consume(t, topicOf(typ), 1, 3*time.Second)
	if len(got) != 1 || string(got[0]) != "once" {
		t.Fatalf("want one copy in Kafka, got %q", got)
	}
}

// TestRealServerRestRetryKeepsGUID loses the first REST answer (the proxy forwards the
// request, then cuts the connection): the client retries with the same guid. REST has no
// dedup, so Kafka holds two copies: at least once.
func TestRealServerRestRetryKeepsGUID(t *testing.T) {
	srv := startServer(t)
	p := startCutProxy(t, srv.HTTPAddr, 1)
	c, _ := raccoon.NewRest(raccoon.WithURL("http://"+p.Addr()+"/api/v1/events"), fastRetry(3), quiet)
	defer c.Close()
	typ := eventType("restretry")
	guid, resp, err := c.Send([]*raccoon.Event{{Type: typ, Data: []byte("twice")}})
	if err != nil || resp.ReqGUID() != guid {
		t.Fatalf("send: %v %+v", err, resp)
	}
	guids := p.GUIDs()
	if len(guids) != 2 || guids[0] != guid || guids[1] != guid {
		t.Fatalf("requests through the proxy carried %v, want [%s %s]", guids, guid, guid)
	}
	if got := consume(t, topicOf(typ), 2, time.Second); len(got) != 2 {
		t.Fatalf("want 2 copies, got %d", len(got))
	}
}

// TestRealServerWebSocketReconnectsAfterRestart kills the server, sends while it is down,
// restarts it on the same port: the client reconnects and delivers the queued batch.
func TestRealServerWebSocketReconnectsAfterRestart(t *testing.T) {
	port := freePort(t)
	// EVENT_ACK=1: an acknowledged batch is in Kafka, so the kill loses nothing acknowledged.
	env := []string{fmt.Sprintf("SERVER_WEBSOCKET_PORT=%d", port), "EVENT_ACK=1"}
	srv := startServer(t, env...)
	c, err := raccoon.NewWebSocket(raccoon.WithURL(srv.WSURL()), raccoon.WithHeader("X-User-ID", "restart"),
		raccoon.WithReconnect(50*time.Millisecond, 500*time.Millisecond), raccoon.WithPing(200*time.Millisecond, time.Second),
		raccoon.WithTimeout(10*time.Second), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	typ := eventType("restart")
	sendAndCheck(t, c, []*raccoon.Event{{Type: typ, Data: []byte("before")}})
	srv.Kill()
	waitFor(t, 10*time.Second, "the client notices the dead server", func() bool { return !c.Connected() })
	guid, _, err := c.Send([]*raccoon.Event{{Type: typ, Data: []byte("while-down")}})
	if err != nil {
		t.Fatalf("send while down: %v", err)
	}
	startServer(t, env...)
	a := waitAck(t, c, 30*time.Second)
	if a.Err != nil || a.ReqGUID != guid {
		t.Fatalf("ack of the batch sent while down: %+v", a)
	}
	if c.Reconnects() < 1 {
		t.Fatal("no reconnect counted")
	}
	sendAndCheck(t, c, []*raccoon.Event{{Type: typ, Data: []byte("after")}})
	sameSet(t, consume(t, topicOf(typ), 3, 500*time.Millisecond), [][]byte{[]byte("before"), []byte("while-down"), []byte("after")})
}

// TestRealServerUnreadAckChannel sends more batches than the ack channel holds and never
// reads it: nothing stalls, the overflow is counted, and every event reaches Kafka.
func TestRealServerUnreadAckChannel(t *testing.T) {
	srv := startServer(t)
	c, err := raccoon.NewWebSocket(raccoon.WithURL(srv.WSURL()), raccoon.WithHeader("X-User-ID", "unread"), raccoon.WithAckBuffer(4), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	typ := eventType("unread")
	var want [][]byte
	for i := 0; i < 50; i++ {
		b := []byte(fmt.Sprintf("e%d", i))
		want = append(want, b)
		if _, _, err := c.Send([]*raccoon.Event{{Type: typ, Data: b}}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "all 50 batches answered", func() bool { return c.InFlight() == 0 })
	if d := c.DroppedAcks(); d != 46 {
		t.Fatalf("dropped %d acks, want 46", d)
	}
	for i := 0; i < 4; i++ {
		if a := waitAck(t, c, time.Second); a.Err != nil {
			t.Fatalf("buffered ack %+v", a)
		}
	}
	want = append(want, []byte("last"))
	sendAndCheck(t, c, []*raccoon.Event{{Type: typ, Data: []byte("last")}})
	sameSet(t, consume(t, topicOf(typ), len(want), 500*time.Millisecond), want)
}

// TestRealServerRejectsConnection: codes 4 (SERVER_WEBSOCKET_MAX_CONN) and 5 (a duplicate
// X-User-ID) come back as a *RejectedError, from Send or on Acks, within a bounded time.
func TestRealServerRejectsConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		ids  [2]string
		code raccoon.Code
	}{
		{"max-conn", []string{"SERVER_WEBSOCKET_MAX_CONN=1"}, [2]string{"a", "b"}, raccoon.CodeMaxConnectionLimit},
		{"duplicate-id", nil, [2]string{"same", "same"}, raccoon.CodeMaxUserLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, tc.env...)
			first, err := raccoon.NewWebSocket(raccoon.WithURL(srv.WSURL()), raccoon.WithHeader("X-User-ID", tc.ids[0]), quiet)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			sendAndCheck(t, first, []*raccoon.Event{{Type: eventType("rej"), Data: []byte("x")}})
			second, err := raccoon.NewWebSocket(raccoon.WithURL(srv.WSURL()), raccoon.WithHeader("X-User-ID", tc.ids[1]), quiet)
			if err != nil {
				t.Fatal(err)
			}
			defer second.Close()
			_, _, err = second.Send([]*raccoon.Event{{Type: eventType("rej"), Data: []byte("y")}})
			if err == nil {
				err = waitAck(t, second, 10*time.Second).Err
			}
			var rej *raccoon.RejectedError
			if !errors.As(err, &rej) || rej.Code != tc.code {
				t.Fatalf("want a RejectedError with code %v, got %v", tc.code, err)
			}
			// The first connection is not disturbed.
			sendAndCheck(t, first, []*raccoon.Event{{Type: eventType("rej"), Data: []byte("z")}})
		})
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
