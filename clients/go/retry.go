package raccoon

import (
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
