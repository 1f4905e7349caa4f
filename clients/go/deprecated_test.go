package raccoon_test

// The names Encoding replaced (Wire, WireProto, WireJSON, WithWire, Options.Wire) still compile
// and send exactly what their replacements send.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"sync"
	"testing"

	raccoon "raccoon/clients/go"
)

// Compile-time: the old names are the new ones, not look-alikes.
var (
	_ raccoon.Wire     = raccoon.EncodingJSON
	_ raccoon.Encoding = raccoon.WireJSON
)

// captured is a REST request as it left the client.
type captured struct {
	contentType, accept string
	body                []byte
}

// capture is an http.RoundTripper that records each request's body and headers, then sends it.
type capture struct {
	mu   sync.Mutex
	seen []captured
}

func (c *capture) RoundTrip(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	c.mu.Lock()
	c.seen = append(c.seen, captured{r.Header.Get("Content-Type"), r.Header.Get("Accept"), body})
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

// setWire sets the deprecated field directly, as a ClientOption written against the old API does.
type setWire raccoon.Wire

func (w setWire) Apply(o *raccoon.Options) { o.Wire = raccoon.Wire(w) }

// sendREST sends one batch with guid "g-1" to f with opts and returns the request as sent.
func sendREST(t *testing.T, f *fakeServer, opts ...raccoon.ClientOption) captured {
	t.Helper()
	tr := &capture{}
	opts = append([]raccoon.ClientOption{raccoon.WithURL(f.RestURL()), raccoon.WithHTTPClient(&http.Client{Transport: tr}), quiet}, opts...)
	c, err := raccoon.NewRest(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.SendContext(t.Context(), "g-1", []*raccoon.Event{{Type: "page", Data: []byte("hi")}}); err != nil {
		t.Fatalf("send: %v", err)
	}
	if len(tr.seen) != 1 {
		t.Fatalf("%d requests sent, want 1", len(tr.seen))
	}
	return tr.seen[0]
}

// withoutSentTime is a JSON request body decoded, sent_time (the clock) left out.
func withoutSentTime(t *testing.T, body []byte) map[string]interface{} {
	t.Helper()
	var m map[string]interface{}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("not JSON: %v: %q", err, body)
	}
	if _, ok := m["sent_time"]; !ok {
		t.Fatalf("no sent_time in %q", body)
	}
	delete(m, "sent_time")
	return m
}

func TestDeprecatedWireNamesSendWhatEncodingSends(t *testing.T) {
	if raccoon.WireProto != raccoon.EncodingProto || raccoon.WireJSON != raccoon.EncodingJSON {
		t.Fatal("the old constants are not the new values")
	}
	if raccoon.WireJSON.String() != "json" || raccoon.WireProto.String() != "proto" {
		t.Fatalf("String: %v %v", raccoon.WireJSON, raccoon.WireProto)
	}
	f := newFakeServer()
	defer f.Close()
	want := sendREST(t, f, raccoon.WithEncoding(raccoon.EncodingJSON))
	if want.contentType != "application/json" || want.accept != "application/json" {
		t.Fatalf("WithEncoding(EncodingJSON) sent Content-Type %q, Accept %q", want.contentType, want.accept)
	}
	wantBody := withoutSentTime(t, want.body)
	for name, opt := range map[string]raccoon.ClientOption{
		"WithWire(WireJSON)":    raccoon.WithWire(raccoon.WireJSON),
		"Options.Wire=WireJSON": setWire(raccoon.WireJSON),
	} {
		got := sendREST(t, f, opt)
		if got.contentType != want.contentType || got.accept != want.accept {
			t.Errorf("%s sent Content-Type %q, Accept %q; WithEncoding sent %q, %q", name, got.contentType, got.accept, want.contentType, want.accept)
		}
		if body := withoutSentTime(t, got.body); !reflect.DeepEqual(body, wantBody) {
			t.Errorf("%s sent %v; WithEncoding sent %v", name, body, wantBody)
		}
	}
	// The last of WithWire and WithEncoding wins, whichever name it has.
	if got := sendREST(t, f, raccoon.WithWire(raccoon.WireJSON), raccoon.WithEncoding(raccoon.EncodingProto)); got.contentType != "application/proto" {
		t.Errorf("WithWire(WireJSON) then WithEncoding(EncodingProto) sent %q", got.contentType)
	}
	if got := sendREST(t, f, raccoon.WithEncoding(raccoon.EncodingJSON), raccoon.WithWire(raccoon.WireProto)); got.contentType != "application/proto" {
		t.Errorf("WithEncoding(EncodingJSON) then WithWire(WireProto) sent %q", got.contentType)
	}
	if n := len(f.Requests()); n != 5 {
		t.Fatalf("the fake server decoded %d requests, want 5", n)
	}
	// gRPC refuses JSON under either name.
	for name, opt := range map[string]raccoon.ClientOption{
		"WithWire(WireJSON)":    raccoon.WithWire(raccoon.WireJSON),
		"Options.Wire=WireJSON": setWire(raccoon.WireJSON),
	} {
		if _, err := raccoon.NewGrpc(opt); err == nil {
			t.Errorf("gRPC accepted %s", name)
		}
	}
}
