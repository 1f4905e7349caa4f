package raccoon

import (
	"testing"
	"time"
)

func TestBackoffDoublesWithinBounds(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
	for n, base := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 9: time.Second} {
		for i := 0; i < 50; i++ {
			if d := b.next(n); d > base || d < base*4/5 {
				t.Fatalf("next(%d) = %v, want in [%v, %v]", n, d, base*4/5, base)
			}
		}
	}
}

func TestRetryDefaults(t *testing.T) {
	r := Retry{}.withDefaults()
	if r.MaxAttempts != 3 || r.Delay != time.Second || r.MaxDelay != 10*time.Second {
		t.Fatalf("%+v", r)
	}
}

func TestOnlyInternalErrorIsRetryable(t *testing.T) {
	for c := CodeUnspecified; c <= CodeMaxUserLimit; c++ {
		if c.Retryable() != (c == CodeInternalError) {
			t.Fatalf("%v retryable = %v", c, c.Retryable())
		}
	}
}

func TestJSONEncodingIsRaccoonShape(t *testing.T) {
	req, err := buildRequest(JSON, "g1", []*Event{{Type: "page", Data: "hi"}}, time.Unix(10, 20))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := encodeRequest(req, EncodingJSON)
	want := `{"req_guid":"g1","sent_time":{"seconds":10,"nanos":20},"events":[{"event_bytes":"ImhpIg==","type":"page"}]}`
	if string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
}

func TestDecodeServerReplies(t *testing.T) {
	r, err := decodeResponse([]byte(`{"status":2,"code":3,"sent_time":1796117400,"reason":"cannot publish","data":{"req_guid":"b"}}`), EncodingJSON)
	if err != nil || r.Status != StatusError || r.Code != CodeInternalError || r.SentTime != 1796117400 || r.ReqGUID() != "b" || r.Reason != "cannot publish" {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := decodeResponse([]byte("not json"), EncodingJSON); err == nil {
		t.Fatal("garbage decoded")
	}
}

func TestAppHeadersSkipEmpty(t *testing.T) {
	h := (&App{ID: "x"}).headers()
	if len(h) != 1 || h[HeaderAppID] != "x" {
		t.Fatalf("%v", h)
	}
	if len((*App)(nil).headers()) != 0 {
		t.Fatal("nil app has headers")
	}
}

func TestUserAgentCarriesBuildInfo(t *testing.T) {
	if got := UserAgent(); got != "raccoon-go/dev (built unknown)" {
		t.Fatal(got)
	}
}
