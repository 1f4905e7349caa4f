package raccoon

import (
	"context"
	"math/rand/v2"
	"time"
)

// Retry is the retry policy. A batch is sent again, with the same req_guid, after a transport
// error (connection refused or dropped, timeout, unreadable reply) or a reply whose Code is
// Retryable (CodeInternalError), at most MaxAttempts times in all.
type Retry struct {
	MaxAttempts int           // default 3
	Delay       time.Duration // before the second attempt; default 1 s
	MaxDelay    time.Duration // cap of the doubling; default 10 s
}

func (r Retry) withDefaults() Retry {
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 3
	}
	if r.Delay <= 0 {
		r.Delay = time.Second
	}
	if r.MaxDelay < r.Delay {
		r.MaxDelay = 10 * r.Delay
	}
	return r
}

// run calls attempt until it succeeds or fails in a way not worth retrying, at most
// MaxAttempts times, pausing between attempts; the caller sends the same request (same
// req_guid) each time. It returns the last reply and error, or the context's error (with the
// last reply) if ctx ends during a pause. name ("rest", "grpc") prefixes the log lines.
func (r Retry) run(ctx context.Context, logger Logger, name, reqGUID string, attempt func() (*Response, bool, error)) (*Response, error) {
	var lastErr error
	var lastResp *Response
	for n := 1; n <= r.MaxAttempts; n++ {
		if n > 1 {
			wait := r.wait(n - 1)
			logger.Infof("%s: batch %s attempt %d after %v: %v", name, reqGUID, n, wait, lastErr)
			select {
			case <-ctx.Done():
				return lastResp, ctx.Err()
			case <-time.After(wait):
			}
		}
		resp, retry, err := attempt()
		if err == nil || !retry {
			return resp, err
		}
		lastResp, lastErr = resp, err
	}
	logger.Errorf("%s: batch %s failed after %d attempts: %v", name, reqGUID, r.MaxAttempts, lastErr)
	return lastResp, lastErr
}

// wait returns the pause after the given failed attempt (1-based).
func (r Retry) wait(attempt int) time.Duration {
	return Backoff{Initial: r.Delay, Max: r.MaxDelay}.next(attempt)
}

// Backoff is an exponential backoff with jitter: about Initial * 2^(n-1), at most Max.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// next returns the n-th pause (n >= 1), with up to 20% jitter taken off.
func (b Backoff) next(n int) time.Duration {
	d := b.Initial
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	if d <= 0 {
		return 0
	}
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}
