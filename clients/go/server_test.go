package raccoon_test

// The harness for tests against the real server binary and the local Kafka broker.
//
// RACCOON_BIN names the binary (default ../../target/debug/raccoon, built by `cargo build` at
// the repository root); RACCOON_KAFKA the broker (default 127.0.0.1:9092). Without the binary
// the tests skip, unless CI is set: then they fail.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
)

func raccoonBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("RACCOON_BIN")
	if bin == "" {
		bin = "../../target/debug/raccoon"
	}
	if _, err := os.Stat(bin); err != nil {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" {
			t.Fatalf("server binary %s missing (CI=%s): run `cargo build` at the repository root", bin, ci)
		}
		t.Skipf("server binary %s missing: run `cargo build` at the repository root (or set RACCOON_BIN)", bin)
	}
	return bin
}

func kafkaAddr() string {
	if a := os.Getenv("RACCOON_KAFKA"); a != "" {
		return a
	}
	return "127.0.0.1:9092"
}

type realServer struct {
	cmd      *exec.Cmd
	HTTPAddr string
	GRPCAddr string
	mu       sync.Mutex
	log      []string
	exited   chan struct{}
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// addressesLine is what the server writes to --addresses-file once it serves (README.md,
// "Endpoints"): its pid and the addresses it bound, prometheus null when off.
type addressesLine struct {
	Raccoon    string  `json:"raccoon"`
	PID        int     `json:"pid"`
	HTTP       string  `json:"http"`
	GRPC       string  `json:"grpc"`
	Prometheus *string `json:"prometheus"`
}

// startServer runs the binary on 127.0.0.1 with the given extra environment and waits
// (at most 30 s) for its addresses file, written under a temporary name and renamed into
// place, so a file that exists holds the whole line.
func startServer(t *testing.T, env ...string) *realServer {
	t.Helper()
	file := filepath.Join(t.TempDir(), "addresses.json")
	cmd := exec.Command(raccoonBin(t), "--addresses-file", file)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"SERVER_BIND_ADDRESS=127.0.0.1",
		"SERVER_WEBSOCKET_PORT=0",
		"SERVER_GRPC_PORT=0",
		"SERVER_SHARDS=2",
		"PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS=" + kafkaAddr(),
		"LOG_LEVEL=info",
	}, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &realServer{cmd: cmd, exited: make(chan struct{})}
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.log = append(s.log, ansi.ReplaceAllString(sc.Text(), ""))
			s.mu.Unlock()
		}
	}()
	// os/exec: Wait must not run before the reads from StderrPipe are done; stderr ends when
	// the process does, so the log is whole once exited is closed.
	go func() { <-logDone; _ = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.Stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		text, err := os.ReadFile(file)
		if err == nil {
			var a addressesLine
			if err := json.Unmarshal(text, &a); err != nil || a.Raccoon != "listening" || a.HTTP == "" || a.GRPC == "" {
				t.Fatalf("%s is not the addresses line (%v): %q", file, err, text)
			}
			if a.PID != cmd.Process.Pid {
				t.Fatalf("%s names pid %d, the server is %d", file, a.PID, cmd.Process.Pid)
			}
			s.HTTPAddr, s.GRPCAddr = a.HTTP, a.GRPC
			return s
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		select {
		case <-s.exited:
			t.Fatalf("server exited at startup:\n%s", s.Log())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no addresses file within 30s:\n%s", s.Log())
		}
	}
}

func (s *realServer) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.log, "\n")
}

// Stop sends SIGTERM and waits up to 15 s, then kills.
func (s *realServer) Stop(t *testing.T) {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		t.Errorf("server ignored SIGTERM for 15s")
	}
}

// Kill ends the process at once.
func (s *realServer) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

func (s *realServer) WSURL() string   { return "ws://" + s.HTTPAddr + "/api/v1/events" }
func (s *realServer) RestURL() string { return "http://" + s.HTTPAddr + "/api/v1/events" }

// freePort returns a port nothing listens on right now.
func freePort(t *testing.T) int {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().(*net.TCPAddr).Port
}

// eventType returns a fresh event type, so each test reads a topic of its own.
func eventType(name string) string { return "go-" + name + "-" + uuid.NewString()[:8] }

func topicOf(eventType string) string { return "clickstream-" + eventType + "-log" }

// consume reads topic from its start until want records arrived, then for settle longer (to
// see copies that should not be there), all within 60 s.
func consume(t *testing.T, topic string, want int, settle time.Duration) [][]byte {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr()), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got [][]byte
	deadline := time.Now().Add(60 * time.Second)
	var settleEnd time.Time
	for {
		end := deadline
		if len(got) >= want {
			if settleEnd.IsZero() {
				settleEnd = time.Now().Add(settle)
			}
			end = settleEnd
		}
		if time.Now().After(end) {
			break
		}
		ctx, cancel := context.WithDeadline(context.Background(), end)
		fetches := cl.PollFetches(ctx)
		cancel()
		fetches.EachRecord(func(r *kgo.Record) { got = append(got, r.Value) })
	}
	if len(got) < want {
		t.Fatalf("topic %s: %d of %d records within 60s", topic, len(got), want)
	}
	return got
}

func sameSet(t *testing.T, got, want [][]byte) {
	t.Helper()
	count := map[string]int{}
	for _, w := range want {
		count[string(w)]++
	}
	for _, g := range got {
		count[string(g)]--
	}
	for k, n := range count {
		if n != 0 {
			t.Fatalf("records differ from what was sent (%q off by %d): got %d records, want %d", k, n, len(got), len(want))
		}
	}
}
