package raccoon_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	raccoon "raccoon/clients/go"
	pb "raccoon/clients/go/raccoonpb"
)

var quiet = raccoon.WithLogger(nil)

func fastRetry(n int) raccoon.ClientOption {
	return raccoon.WithRetry(n, 10*time.Millisecond, 50*time.Millisecond)
}

func TestRestRetriesRetryableCodeWithSameGUID(t *testing.T) {
	f := newFakeServer()
	defer f.Close()
	f.reply = func(n int, req *pb.SendEventRequest) (*pb.SendEventResponse, int) {
		if n == 0 {
			return fail(req, pb.Code_CODE_INTERNAL_ERROR, "cannot publish events"), 500
		}
		return ok(req), 200
	}
	c, err := raccoon.NewRest(raccoon.WithURL(f.RestURL()), fastRetry(3), quiet)
	if err != nil {
		t.Fatal(err)
	}
	guid, resp, err := c.Send([]*raccoon.Event{{Type: "page", Data: []byte("a")}})
	if err != nil || resp.Status != raccoon.StatusSuccess || resp.ReqGUID() != guid {
		t.Fatalf("send: %v %+v", err, resp)
	}
	reqs := f.Requests()
	if len(reqs) != 2 || reqs[0].GetReqGuid() != guid || reqs[1].GetReqGuid() != guid {
		t.Fatalf("want 2 attempts with guid %s, got %v", guid, reqs)
	}
	if string(reqs[1].GetEvents()[0].GetEventBytes()) != "a" {
		t.Fatalf("resent batch differs: %v", reqs[1])
	}
}

func TestRestBadRequestIsNotRetried(t *testing.T) {
	f := newFakeServer()
	defer f.Close()
	f.reply = func(_ int, req *pb.SendEventRequest) (*pb.SendEventResponse, int) {
		return fail(req, pb.Code_CODE_BAD_REQUEST, "bad type"), 400
	}
	c, _ := raccoon.NewRest(raccoon.WithURL(f.RestURL()), fastRetry(3), quiet)
	_, resp, err := c.Send([]*raccoon.Event{{Type: "x", Data: []byte("a")}})
	var se *raccoon.ServerError
	if !errors.As(err, &se) || se.HTTPStatus != 400 || resp.Code != raccoon.CodeBadRequest || resp.Reason != "bad type" {
		t.Fatalf("want a ServerError with code 2, got %v %+v", err, resp)
	}
	if n := len(f.Requests()); n != 1 {
		t.Fatalf("code 2 was sent %d times", n)
	}
	if raccoon.IsRetryable(err) {
		t.Fatal("code 2 reported retryable")
	}
}

func TestRestTransportErrorIsRetriedThenReturned(t *testing.T) {
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	var log captureLogger
	c, _ := raccoon.NewRest(raccoon.WithURL("http://"+addr+"/api/v1/events"), fastRetry(3), raccoon.WithLogger(&log))
	start := time.Now()
	_, resp, err := c.Send([]*raccoon.Event{{Type: "x", Data: []byte("a")}})
	var te *raccoon.TransportError
	if !errors.As(err, &te) || resp != nil || !raccoon.IsRetryable(err) {
		t.Fatalf("want a TransportError, got %v %+v", err, resp)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
	if got := log.count("INFO rest: batch"); got != 2 {
		t.Fatalf("want 2 retry log lines, got %d: %v", got, log.lines())
	}
}

func TestRestHeadersAppInfoJSONEncodingAndSerializer(t *testing.T) {
	f := newFakeServer()
	defer f.Close()
	upper := func(v interface{}) ([]byte, error) { return []byte(strings.ToUpper(fmt.Sprint(v))), nil }
	c, _ := raccoon.NewRest(raccoon.WithURL(f.RestURL()), raccoon.WithEncoding(raccoon.EncodingJSON),
		raccoon.WithSerializer(upper), raccoon.WithHeader("X-User-ID", "u1"), quiet)
	c.SetAppInfo(&raccoon.App{ID: "app-1", Name: "shop", Version: "2.0"})
	_, resp, err := c.SendContext(context.Background(), "guid-1", []*raccoon.Event{{Type: "page", Data: "hello"}})
	if err != nil || resp.ReqGUID() != "guid-1" {
		t.Fatalf("send: %v %+v", err, resp)
	}
	h := f.Headers()[0]
	for k, want := range map[string]string{"Content-Type": "application/json", "X-User-Id": "u1",
		raccoon.HeaderAppID: "app-1", raccoon.HeaderAppName: "shop", raccoon.HeaderAppVersion: "2.0",
		"User-Agent": raccoon.UserAgent()} {
		if got := h.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	req := f.Requests()[0]
	if string(req.GetEvents()[0].GetEventBytes()) != "HELLO" || req.GetSentTime().AsTime().IsZero() {
		t.Fatalf("request %v", req)
	}
}

func TestGrpcRetriesUnavailableWithSameGUIDAndSendsMetadata(t *testing.T) {
	f := newFakeServer()
	defer f.Close()
	f.reply = func(n int, req *pb.SendEventRequest) (*pb.SendEventResponse, int) {
		if n == 0 {
			return nil, 0
		}
		return ok(req), 200
	}
	c, err := raccoon.NewGrpc(raccoon.WithAddr(f.GRPCAddr), raccoon.WithHeader("X-User-ID", "u1"), fastRetry(3), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetAppInfo(&raccoon.App{ID: "a"})
	ev := timestamppb.New(time.Unix(5, 6))
	guid, resp, err := c.Send([]*raccoon.Event{{Type: "t", Data: ev}})
	if err != nil || resp.ReqGUID() != guid {
		t.Fatalf("send: %v %+v", err, resp)
	}
	reqs := f.Requests()
	if len(reqs) != 2 || reqs[1].GetReqGuid() != guid {
		t.Fatalf("attempts %v", reqs)
	}
	want, _ := proto.Marshal(ev)
	if string(reqs[1].GetEvents()[0].GetEventBytes()) != string(want) {
		t.Fatal("PROTO serializer bytes differ")
	}
	h := f.Headers()[1]
	if h.Get("x-user-id") != "u1" || h.Get("x-app-id") != "a" {
		t.Fatalf("metadata %v", h)
	}
}

func TestGrpcServerRefusalIsNotRetried(t *testing.T) {
	f := newFakeServer()
	defer f.Close()
	f.reply = func(_ int, req *pb.SendEventRequest) (*pb.SendEventResponse, int) {
		return fail(req, pb.Code_CODE_BAD_REQUEST, "no topic"), 200
	}
	c, _ := raccoon.NewGrpc(raccoon.WithAddr(f.GRPCAddr), fastRetry(3), quiet)
	defer c.Close()
	_, resp, err := c.Send([]*raccoon.Event{{Type: "t", Data: []byte{1}}})
	var se *raccoon.ServerError
	if !errors.As(err, &se) || resp.Code != raccoon.CodeBadRequest || len(f.Requests()) != 1 {
		t.Fatalf("got %v %+v after %d calls", err, resp, len(f.Requests()))
	}
}

func TestGrpcRefusesJSONEncoding(t *testing.T) {
	if _, err := raccoon.NewGrpc(raccoon.WithEncoding(raccoon.EncodingJSON)); err == nil {
		t.Fatal("gRPC accepted the JSON encoding")
	}
}

func TestGrpcStatusErrorKeepsItsCode(t *testing.T) {
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := lis.Addr().String()
	lis.Close()
	c, _ := raccoon.NewGrpc(raccoon.WithAddr(addr), fastRetry(2), raccoon.WithTimeout(time.Second), quiet)
	defer c.Close()
	_, _, err := c.Send([]*raccoon.Event{{Type: "t", Data: []byte{1}}})
	if status.Code(errors.Unwrap(err)) != codes.Unavailable {
		t.Fatalf("want UNAVAILABLE, got %v", err)
	}
}

func TestSerializerErrorIsReturned(t *testing.T) {
	f := newFakeServer()
	defer f.Close()
	c, _ := raccoon.NewRest(raccoon.WithURL(f.RestURL()), quiet)
	if _, _, err := c.Send([]*raccoon.Event{{Type: "t", Data: "not a proto"}}); err == nil || !strings.Contains(err.Error(), "proto.Message") {
		t.Fatalf("want a serializer error, got %v", err)
	}
	if len(f.Requests()) != 0 {
		t.Fatal("a batch that did not serialize was sent")
	}
}

func TestStatsDNames(t *testing.T) {
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	f := newFakeServer()
	defer f.Close()
	c, _ := raccoon.NewRest(raccoon.WithURL(f.RestURL()), raccoon.WithStatsD(udp.LocalAddr().String(), "app"), quiet)
	if _, _, err := c.Send([]*raccoon.Event{{Type: "t", Data: []byte("abc")}}); err != nil {
		t.Fatal(err)
	}
	want := []string{"app.sent_tt_ms:", "app.ack_tt_ms:", "app.total_bytes_sent:", "app.total_bytes_received:", "app.total_bytes_recieved:"}
	got := ""
	_ = udp.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	for !containsAll(got, want) {
		n, _, err := udp.ReadFrom(buf)
		if err != nil {
			t.Fatalf("statsd: %v; got %q", err, got)
		}
		got += string(buf[:n]) + "\n"
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// captureLogger records log lines.
type captureLogger struct {
	mu sync.Mutex
	l  []string
}

func (c *captureLogger) Infof(f string, a ...interface{})  { c.add("INFO " + fmt.Sprintf(f, a...)) }
func (c *captureLogger) Errorf(f string, a ...interface{}) { c.add("ERROR " + fmt.Sprintf(f, a...)) }
func (c *captureLogger) add(s string) {
	c.mu.Lock()
	c.l = append(c.l, s)
	c.mu.Unlock()
}
func (c *captureLogger) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.l...)
}
func (c *captureLogger) count(sub string) int {
	n := 0
	for _, l := range c.lines() {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}
