package raccoon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"
	pb "raccoon/clients/go/raccoonpb"
)

// maxReplyBytes bounds how much of a reply is read.
const maxReplyBytes = 1 << 20

// RestClient sends batches as POST requests to /api/v1/events.
//
// Send returns after the server answered (or every attempt failed). It is safe for
// concurrent use.
type RestClient struct {
	opts  Options
	http  *http.Client
	stats stats
	mu    sync.RWMutex
	app   *App
}

var _ Client = (*RestClient)(nil)

// NewRest returns a REST client. The URL defaults to http://127.0.0.1:8080/api/v1/events.
func NewRest(opts ...ClientOption) (*RestClient, error) {
	o := buildOptions("http://127.0.0.1:8080/api/v1/events", opts)
	if !strings.HasPrefix(o.URL, "http://") && !strings.HasPrefix(o.URL, "https://") {
		return nil, fmt.Errorf("raccoon: REST url %q: want http:// or https://", o.URL)
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: o.Timeout}
		if o.TLS != nil {
			transport := http.DefaultTransport.(*http.Transport).Clone()
			transport.TLSClientConfig = o.TLS
			hc.Transport = transport
		}
	}
	return &RestClient{opts: o, http: hc, stats: stats{o.Statter}}, nil
}

// SetAppInfo sets the App sent (as X-App-* headers) with every later request.
func (c *RestClient) SetAppInfo(app *App) {
	c.mu.Lock()
	c.app = app
	c.mu.Unlock()
}

// Send sends events with a new request guid.
func (c *RestClient) Send(events []*Event) (string, *Response, error) {
	return c.SendContext(context.Background(), "", events)
}

// SendContext sends events as one batch with request guid reqGUID ("" generates a UUIDv4)
// and returns the guid, the server's reply and an error. The error is non-nil when the batch
// was not accepted: a *ServerError (the reply is returned too) or, after the last attempt,
// a *TransportError.
func (c *RestClient) SendContext(ctx context.Context, reqGUID string, events []*Event) (string, *Response, error) {
	start := time.Now()
	if reqGUID == "" {
		reqGUID = uuid.NewString()
	}
	defer func() { c.stats.timing(StatSentTime, time.Since(start)) }()
	req, err := buildRequest(c.opts.Serializer, reqGUID, events, time.Now())
	if err != nil {
		return reqGUID, nil, err
	}
	resp, err := c.opts.Retry.run(ctx, c.opts.Logger, "rest", reqGUID, func() (*Response, bool, error) {
		return c.attempt(ctx, req)
	})
	return reqGUID, resp, err
}

// attempt sends once; retry tells whether the failure is worth another attempt.
func (c *RestClient) attempt(ctx context.Context, req *pb.SendEventRequest) (*Response, bool, error) {
	req.SentTime = timestamppb.Now()
	body, err := encodeRequest(req, c.opts.Encoding)
	if err != nil {
		return nil, false, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.opts.URL, bytes.NewReader(body))
	if err != nil {
		return nil, false, err
	}
	for k, vs := range c.opts.Headers {
		hreq.Header[k] = append([]string(nil), vs...)
	}
	c.mu.RLock()
	for k, v := range c.app.headers() {
		hreq.Header.Set(k, v)
	}
	c.mu.RUnlock()
	hreq.Header.Set("User-Agent", UserAgent())
	if c.opts.Encoding == EncodingJSON {
		hreq.Header.Set("Content-Type", "application/json")
		hreq.Header.Set("Accept", "application/json")
	} else {
		hreq.Header.Set("Content-Type", "application/proto")
		hreq.Header.Set("Accept", "application/proto")
	}
	sent := time.Now()
	hresp, err := c.http.Do(hreq)
	c.stats.inc(StatBytesSent, int64(len(body)))
	if err != nil {
		c.stats.inc(StatConnErrors, 1)
		return nil, ctx.Err() == nil, &TransportError{Op: "POST " + c.opts.URL, Err: err}
	}
	defer hresp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(hresp.Body, maxReplyBytes))
	c.stats.received(len(reply))
	if err != nil {
		c.stats.inc(StatConnErrors, 1)
		return nil, ctx.Err() == nil, &TransportError{Op: "reading the reply", Err: err}
	}
	encoding := EncodingProto
	if strings.Contains(strings.ToLower(hresp.Header.Get("Content-Type")), "json") {
		encoding = EncodingJSON
	}
	resp, derr := decodeResponse(reply, encoding)
	if derr != nil {
		// No SendEventResponse: a proxy's answer, or the reply was cut off.
		retry := hresp.StatusCode >= 500 || hresp.StatusCode == http.StatusRequestTimeout || hresp.StatusCode == http.StatusTooManyRequests || hresp.StatusCode == http.StatusOK
		return nil, retry, &TransportError{Op: fmt.Sprintf("http %d reply", hresp.StatusCode), Err: derr}
	}
	if hresp.StatusCode == http.StatusOK && resp.Status == StatusSuccess {
		c.stats.timing(StatAckTime, time.Since(sent))
		return resp, false, nil
	}
	return resp, resp.Code.Retryable(), &ServerError{Response: resp, HTTPStatus: hresp.StatusCode}
}

// Close releases idle connections.
func (c *RestClient) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// IsRetryable reports whether err is one the clients retry: a transport error or a reply with
// a retryable code.
func IsRetryable(err error) bool {
	var te *TransportError
	var se *ServerError
	switch {
	case errors.As(err, &te):
		return true
	case errors.As(err, &se):
		return se.Response.Code.Retryable()
	}
	return false
}
