package raccoon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	pb "raccoon/clients/go/raccoonpb"
)

// GrpcClient calls raystack.raccoon.v1beta1.EventService/SendEvent. The request is always
// protobuf. Headers (WithHeader) and the App go as metadata; the server needs its
// connection id header (X-User-ID by default) there, or it fails every call.
//
// Send returns after the server answered (or every attempt failed). It is safe for
// concurrent use.
type GrpcClient struct {
	opts  Options
	conn  *grpc.ClientConn
	stub  pb.EventServiceClient
	stats stats
	mu    sync.RWMutex
	app   *App
}

var _ Client = (*GrpcClient)(nil)

// NewGrpc returns a gRPC client for Options.Addr (default 127.0.0.1:8081). Connecting is
// lazy: an unreachable server shows up as Send's error.
func NewGrpc(opts ...ClientOption) (*GrpcClient, error) {
	o := buildOptions("", opts)
	if o.Encoding != EncodingProto {
		return nil, errors.New("raccoon: gRPC carries protobuf only; WithEncoding(EncodingJSON) is not allowed")
	}
	creds := insecure.NewCredentials()
	if o.TLS != nil {
		creds = credentials.NewTLS(o.TLS)
	}
	dial := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent(UserAgent()),
	}, o.DialOptions...)
	conn, err := grpc.NewClient(o.Addr, dial...)
	if err != nil {
		return nil, fmt.Errorf("raccoon: gRPC client for %s: %w", o.Addr, err)
	}
	return &GrpcClient{opts: o, conn: conn, stub: pb.NewEventServiceClient(conn), stats: stats{o.Statter}}, nil
}

// SetAppInfo sets the App sent (as x-app-* metadata) with every later call.
func (c *GrpcClient) SetAppInfo(app *App) {
	c.mu.Lock()
	c.app = app
	c.mu.Unlock()
}

// Send sends events with a new request guid.
func (c *GrpcClient) Send(events []*Event) (string, *Response, error) {
	return c.SendContext(context.Background(), "", events)
}

// SendContext sends events as one batch with request guid reqGUID ("" generates a UUIDv4).
// Calls failing with UNAVAILABLE or DEADLINE_EXCEEDED (the per-attempt Timeout), and replies
// with a retryable code, are retried with the same guid. The error is nil only for a SUCCESS
// reply; otherwise a *ServerError (with the reply), a *TransportError wrapping the gRPC
// status after the last attempt, another gRPC status error (wrapped; status.Code reads it),
// or the context's error.
func (c *GrpcClient) SendContext(ctx context.Context, reqGUID string, events []*Event) (string, *Response, error) {
	start := time.Now()
	defer func() { c.stats.timing(StatSentTime, time.Since(start)) }()
	if reqGUID == "" {
		reqGUID = uuid.NewString()
	}
	req, err := buildRequest(c.opts.Serializer, reqGUID, events, time.Now())
	if err != nil {
		return reqGUID, nil, err
	}
	resp, err := c.opts.Retry.run(ctx, c.opts.Logger, "grpc", reqGUID, func() (*Response, bool, error) {
		return c.attempt(ctx, req)
	})
	return reqGUID, resp, err
}

func (c *GrpcClient) attempt(ctx context.Context, req *pb.SendEventRequest) (*Response, bool, error) {
	req.SentTime = timestamppb.Now()
	md := metadata.MD{}
	for k, vs := range c.opts.Headers {
		md.Append(strings.ToLower(k), vs...)
	}
	c.mu.RLock()
	for k, v := range c.app.headers() {
		md.Set(strings.ToLower(k), v)
	}
	c.mu.RUnlock()
	actx, cancel := context.WithTimeout(metadata.NewOutgoingContext(ctx, md), c.opts.Timeout)
	defer cancel()
	sent := time.Now()
	reply, err := c.stub.SendEvent(actx, req)
	c.stats.inc(StatBytesSent, int64(proto.Size(req)))
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		code := status.Code(err)
		if code == codes.Unavailable || code == codes.DeadlineExceeded {
			c.stats.inc(StatConnErrors, 1)
			return nil, true, &TransportError{Op: "SendEvent", Err: err}
		}
		// The server's own refusal (e.g. UNKNOWN "connection id header missing"): final.
		return nil, false, fmt.Errorf("raccoon: SendEvent: %w", err)
	}
	c.stats.received(proto.Size(reply))
	resp := responseFromPB(reply)
	if resp.Status == StatusSuccess {
		c.stats.timing(StatAckTime, time.Since(sent))
		return resp, false, nil
	}
	return resp, resp.Code.Retryable(), &ServerError{Response: resp}
}

// Close closes the gRPC connection.
func (c *GrpcClient) Close() error { return c.conn.Close() }
