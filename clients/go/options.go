package raccoon

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/cactus/go-statsd-client/v5/statsd"
	"google.golang.org/grpc"
)

// Options is what ClientOptions set. The zero value of a field means its default.
type Options struct {
	// URL of the endpoint: ws://host:8080/api/v1/events (WebSocket),
	// http://host:8080/api/v1/events (REST). The gRPC client uses Addr.
	URL string
	// Addr is the gRPC server's host:port (default 127.0.0.1:8081).
	Addr string
	// Headers go with every request: the WebSocket upgrade, REST requests, gRPC metadata.
	// The server's connection id header (X-User-ID by default) belongs here for WebSocket
	// and gRPC.
	Headers http.Header
	// Serializer makes each event's bytes (default PROTO).
	Serializer Serializer
	// Encoding encodes the request (default EncodingProto; gRPC allows only EncodingProto).
	Encoding Encoding
	// Wire is Encoding's former name. A client reads it only while Encoding is left at its
	// zero value (EncodingProto), so a ClientOption of your own that sets Wire to WireJSON
	// still gets JSON. WithEncoding and WithWire set both fields, so the last one given wins.
	//
	// Deprecated: use Encoding.
	Wire Wire
	// Retry decides how often and how fast a batch is sent again.
	Retry Retry
	// Logger (default: console on stderr). WithLogger(nil) or NopLogger{} disables it.
	Logger Logger
	// Timeout bounds one attempt: REST request, gRPC call, WebSocket wait for an ack
	// (default 10 s).
	Timeout time.Duration
	// DialTimeout bounds a WebSocket connect (default 10 s).
	DialTimeout time.Duration
	// PingInterval is how often the WebSocket client pings (default 10 s); PongWait how long
	// after that it waits for any frame before it drops the connection (default 20 s).
	PingInterval time.Duration
	PongWait     time.Duration
	// AckBuffer is the WebSocket ack channel's capacity (default 1024).
	AckBuffer int
	// Reconnect is the WebSocket reconnect backoff (default 100 ms doubling to 30 s).
	Reconnect Backoff
	// TLS is used for wss:// and https:// URLs and, when set, makes the gRPC client connect
	// over TLS (h2 by ALPN); nil: the system's roots for wss:// and https://, cleartext gRPC.
	// TLSConfig builds one from a CA file and a client certificate.
	TLS *tls.Config
	// DialOptions are gRPC's (default: TLS credentials from TLS if set, else insecure
	// transport credentials).
	DialOptions []grpc.DialOption
	// HTTPClient is REST's (default: a client with Timeout).
	HTTPClient *http.Client
	// Statter receives the statistics (default none).
	Statter statsd.Statter

	loggerSet bool
}

// ClientOption sets Options.
type ClientOption interface {
	Apply(*Options)
}

type optionFunc func(*Options)

func (f optionFunc) Apply(o *Options) { f(o) }

// WithURL sets Options.URL (WebSocket and REST).
func WithURL(url string) ClientOption { return optionFunc(func(o *Options) { o.URL = url }) }

// WithAddr sets Options.Addr (gRPC).
func WithAddr(addr string) ClientOption { return optionFunc(func(o *Options) { o.Addr = addr }) }

// WithHeader adds a header sent with every request.
func WithHeader(key, value string) ClientOption {
	return optionFunc(func(o *Options) {
		if o.Headers == nil {
			o.Headers = http.Header{}
		}
		o.Headers.Add(key, value)
	})
}

// WithSerializer sets how Event.Data becomes bytes: JSON, PROTO or any Serializer.
func WithSerializer(s Serializer) ClientOption {
	return optionFunc(func(o *Options) { o.Serializer = s })
}

// WithEncoding sets Options.Encoding, the request's encoding: EncodingProto (the default) or
// EncodingJSON.
func WithEncoding(e Encoding) ClientOption {
	return optionFunc(func(o *Options) { o.Encoding, o.Wire = e, e })
}

// WithWire is WithEncoding's former name.
//
// Deprecated: use WithEncoding.
func WithWire(w Wire) ClientOption { return WithEncoding(w) }

// WithRetry sets the retry policy: maxAttempts sends in all (1 means no retry), waiting
// delay before the second, doubling up to maxDelay.
func WithRetry(maxAttempts int, delay, maxDelay time.Duration) ClientOption {
	return optionFunc(func(o *Options) { o.Retry = Retry{MaxAttempts: maxAttempts, Delay: delay, MaxDelay: maxDelay} })
}

// WithLogger replaces the console logger; nil disables logging.
func WithLogger(l Logger) ClientOption {
	return optionFunc(func(o *Options) { o.Logger, o.loggerSet = l, true })
}

// WithTimeout sets Options.Timeout.
func WithTimeout(d time.Duration) ClientOption { return optionFunc(func(o *Options) { o.Timeout = d }) }

// WithDialTimeout sets Options.DialTimeout.
func WithDialTimeout(d time.Duration) ClientOption {
	return optionFunc(func(o *Options) { o.DialTimeout = d })
}

// WithPing sets the WebSocket ping interval and pong wait.
func WithPing(interval, pongWait time.Duration) ClientOption {
	return optionFunc(func(o *Options) { o.PingInterval, o.PongWait = interval, pongWait })
}

// WithAckBuffer sets the WebSocket ack channel's capacity.
func WithAckBuffer(n int) ClientOption { return optionFunc(func(o *Options) { o.AckBuffer = n }) }

// WithReconnect sets the WebSocket reconnect backoff.
func WithReconnect(initial, max time.Duration) ClientOption {
	return optionFunc(func(o *Options) { o.Reconnect = Backoff{Initial: initial, Max: max} })
}

// WithDialOptions appends gRPC dial options (they replace the default insecure credentials
// only if they set credentials themselves).
func WithDialOptions(opts ...grpc.DialOption) ClientOption {
	return optionFunc(func(o *Options) { o.DialOptions = append(o.DialOptions, opts...) })
}

// WithHTTPClient sets the REST client's http.Client.
func WithHTTPClient(c *http.Client) ClientOption {
	return optionFunc(func(o *Options) { o.HTTPClient = c })
}

// WithStatter sends the statistics to a StatsD client of your own.
func WithStatter(s statsd.Statter) ClientOption {
	return optionFunc(func(o *Options) { o.Statter = s })
}

// WithStatsD sends the statistics over UDP to addr (host:port), each name prefixed with
// prefix ("" for none). Statistics are off unless this or WithStatter is given.
func WithStatsD(addr, prefix string) ClientOption {
	return optionFunc(func(o *Options) {
		s, err := statsd.NewClientWithConfig(&statsd.ClientConfig{Address: addr, Prefix: prefix})
		if err != nil {
			o.Logger = loggerOr(o)
			o.Logger.Errorf("statsd %s: %v; statistics stay off", addr, err)
			return
		}
		o.Statter = s
	})
}

func loggerOr(o *Options) Logger {
	if o.loggerSet || o.Logger != nil {
		if o.Logger == nil {
			return NopLogger{}
		}
		return o.Logger
	}
	return defaultLogger()
}

func buildOptions(defaultURL string, opts []ClientOption) Options {
	o := Options{URL: defaultURL, Addr: "127.0.0.1:8081"}
	for _, opt := range opts {
		if opt != nil {
			opt.Apply(&o)
		}
	}
	o.Logger = loggerOr(&o)
	if o.Encoding == EncodingProto {
		o.Encoding = o.Wire
	}
	o.Wire = o.Encoding
	if o.Serializer == nil {
		o.Serializer = PROTO
	}
	if o.Headers == nil {
		o.Headers = http.Header{}
	}
	o.Retry = o.Retry.withDefaults()
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Timeout, 10*time.Second)
	def(&o.DialTimeout, 10*time.Second)
	def(&o.PingInterval, 10*time.Second)
	def(&o.PongWait, 20*time.Second)
	def(&o.Reconnect.Initial, 100*time.Millisecond)
	def(&o.Reconnect.Max, 30*time.Second)
	if o.AckBuffer <= 0 {
		o.AckBuffer = 1024
	}
	return o
}

// WithTLS sets Options.TLS: the TLS configuration of wss:// and https:// connections, and of
// the gRPC connection (which then uses TLS).
func WithTLS(c *tls.Config) ClientOption { return optionFunc(func(o *Options) { o.TLS = c }) }

// TLSConfig returns a TLS configuration that trusts the PEM CA certificates in caFile (the
// system's roots when caFile is empty) and presents the PEM certificate chain and key in
// certFile and keyFile when both are set (mTLS). It never turns verification off: a test
// server's own CA belongs in caFile.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("raccoon: TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("raccoon: TLS CA file %s: no PEM certificate in it", caFile)
		}
		c.RootCAs = pool
	}
	switch {
	case certFile != "" && keyFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("raccoon: TLS client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	case certFile != "" || keyFile != "":
		return nil, errors.New("raccoon: TLS client certificate: give both the certificate and the key file")
	}
	return c, nil
}
