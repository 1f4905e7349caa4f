package raccoon_test

import (
	"errors"
	"testing"
	"time"

	raccoon "raccoon/clients/go"
	pb "raccoon/clients/go/raccoonpb"
)

// waitAck reads one Ack or fails after d.
func waitAck(t *testing.T, c *raccoon.WebSocketClient, d time.Duration) raccoon.Ack {
	t.Helper()
	select {
	case a, ok := <-c.Acks():
		if !ok {
			t.Fatal("ack channel closed")
		}
		return a
	case <-time.After(d):
		t.Fatalf("no ack within %v", d)
	}
	return raccoon.Ack{}
}

func TestWebSocketResendsOnAckTimeoutWithSameGUID(t *testing.T) {
	f := newFakeServer()
	defer f.Close()
	f.reply = func(n int, req *pb.SendEventRequest) (*pb.SendEventResponse, int) {
		if n == 0 {
			return nil, 0 // swallow the first copy
		}
		return ok(req), 200
	}
	c, err := raccoon.NewWebSocket(raccoon.WithURL(f.WSURL()), raccoon.WithTimeout(200*time.Millisecond), fastRetry(3), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	guid, resp, err := c.Send([]*raccoon.Event{{Type: "t", Data: []byte("x")}})
	if err != nil || resp != nil {
		t.Fatalf("send: %v %v", err, resp)
	}
	a := waitAck(t, c, 5*time.Second)
	if a.Err != nil || a.ReqGUID != guid || a.Attempts != 2 || a.Response.Status != raccoon.StatusSuccess {
		t.Fatalf("ack %+v", a)
	}
	reqs := f.Requests()
	if len(reqs) != 2 || reqs[0].GetReqGuid() != guid || reqs[1].GetReqGuid() != guid {
		t.Fatalf("requests %v", reqs)
	}
}

func TestWebSocketGivesUpAfterMaxAttempts(t *testing.T) {
	f := newFakeServer()
	defer f.Close()
	f.reply = func(_ int, req *pb.SendEventRequest) (*pb.SendEventResponse, int) { return nil, 0 }
	c, _ := raccoon.NewWebSocket(raccoon.WithURL(f.WSURL()), raccoon.WithTimeout(100*time.Millisecond), fastRetry(2), quiet)
	defer c.Close()
	_, _, _ = c.Send([]*raccoon.Event{{Type: "t", Data: []byte("x")}})
	a := waitAck(t, c, 5*time.Second)
	if !errors.Is(a.Err, raccoon.ErrAckTimeout) || a.Attempts != 2 || len(f.Requests()) != 2 {
		t.Fatalf("ack %+v after %d requests", a, len(f.Requests()))
	}
}

func TestWebSocketRetryableCodeThenBadRequest(t *testing.T) {
	f := newFakeServer()
	defer f.Close()
	f.reply = func(n int, req *pb.SendEventRequest) (*pb.SendEventResponse, int) {
		if n == 0 {
			return fail(req, pb.Code_CODE_INTERNAL_ERROR, "kafka"), 200
		}
		return fail(req, pb.Code_CODE_BAD_REQUEST, "bad"), 200
	}
	c, _ := raccoon.NewWebSocket(raccoon.WithURL(f.WSURL()), raccoon.WithEncoding(raccoon.EncodingJSON), fastRetry(5), quiet)
	defer c.Close()
	guid, _, _ := c.Send([]*raccoon.Event{{Type: "t", Data: []byte("x")}})
	a := waitAck(t, c, 5*time.Second)
	var se *raccoon.ServerError
	if !errors.As(a.Err, &se) || a.Response.Code != raccoon.CodeBadRequest || a.Attempts != 2 || a.ReqGUID != guid {
		t.Fatalf("ack %+v", a)
	}
	if len(f.Requests()) != 2 {
		t.Fatalf("code 2 was retried: %d requests", len(f.Requests()))
	}
}

func TestWebSocketFullAckChannelDropsAndKeepsWorking(t *testing.T) {
	f := newFakeServer()
	defer f.Close()
	c, _ := raccoon.NewWebSocket(raccoon.WithURL(f.WSURL()), raccoon.WithAckBuffer(2), quiet)
	defer c.Close()
	for i := 0; i < 10; i++ {
		if _, _, err := c.Send([]*raccoon.Event{{Type: "t", Data: []byte{byte(i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.InFlight() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if c.InFlight() != 0 || c.DroppedAcks() != 8 {
		t.Fatalf("in flight %d, dropped %d", c.InFlight(), c.DroppedAcks())
	}
	waitAck(t, c, time.Second)
	waitAck(t, c, time.Second)
	guid, _, _ := c.Send([]*raccoon.Event{{Type: "t", Data: []byte("late")}})
	if a := waitAck(t, c, 5*time.Second); a.ReqGUID != guid || a.Err != nil {
		t.Fatalf("ack %+v", a)
	}
}

func TestWebSocketCloseIsIdempotentAndFailsPending(t *testing.T) {
	f := newFakeServer()
	defer f.Close()
	f.reply = func(_ int, req *pb.SendEventRequest) (*pb.SendEventResponse, int) { return nil, 0 }
	c, _ := raccoon.NewWebSocket(raccoon.WithURL(f.WSURL()), quiet)
	guid, _, _ := c.Send([]*raccoon.Event{{Type: "t", Data: []byte("x")}})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	a := waitAck(t, c, time.Second)
	if a.ReqGUID != guid || !errors.Is(a.Err, raccoon.ErrClosed) {
		t.Fatalf("ack %+v", a)
	}
	if _, ok := <-c.Acks(); ok {
		t.Fatal("ack channel not closed")
	}
	if _, _, err := c.Send(nil); !errors.Is(err, raccoon.ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

func TestWebSocketDialErrorIsReturned(t *testing.T) {
	f := newFakeServer()
	url := f.WSURL()
	f.Close()
	start := time.Now()
	if _, err := raccoon.NewWebSocket(raccoon.WithURL(url), raccoon.WithDialTimeout(2*time.Second), quiet); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	if time.Since(start) > 3*time.Second {
		t.Fatal("dial not bounded")
	}
}
