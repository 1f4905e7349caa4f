package raccoon_test

// Fault-injecting TCP proxies in front of the real server, on 127.0.0.1.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type proxy struct {
	lis     net.Listener
	dropped atomic.Int64
	mu      sync.Mutex
	guids   []string
}

func (p *proxy) Addr() string   { return p.lis.Addr().String() }
func (p *proxy) Dropped() int64 { return p.dropped.Load() }
func (p *proxy) GUIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.guids...)
}

func listenProxy(t *testing.T, serve func(client net.Conn)) *proxy {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{lis: lis}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return p
}

// startDropProxy forwards WebSocket connections to target, dropping the first n data frames
// (text or binary) the server sends.
func startDropProxy(t *testing.T, target string, n int64) *proxy {
	var p *proxy
	p = listenProxy(t, func(client net.Conn) {
		defer client.Close()
		server, err := net.DialTimeout("tcp", target, 5*time.Second)
		if err != nil {
			return
		}
		defer server.Close()
		go func() { _, _ = io.Copy(server, client); server.Close() }()
		r := bufio.NewReader(server)
		// The upgrade answer: up to the blank line.
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := client.Write([]byte(line)); err != nil || line == "\r\n" {
				if err != nil {
					return
				}
				break
			}
		}
		for {
			frame, opcode, err := readFrame(r)
			if err != nil {
				return
			}
			if (opcode == 1 || opcode == 2) && p.dropped.Load() < n {
				p.dropped.Add(1)
				continue
			}
			if _, err := client.Write(frame); err != nil {
				return
			}
		}
	})
	return p
}

// readFrame reads one unmasked WebSocket frame (server to client) whole.
func readFrame(r *bufio.Reader) ([]byte, byte, error) {
	head := make([]byte, 2, 14)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, 0, err
	}
	length := uint64(head[1] & 0x7f)
	switch length {
	case 126:
		ext := make([]byte, 2)
		if _, err := io.ReadFull(r, ext); err != nil {
			return nil, 0, err
		}
		head = append(head, ext...)
		length = uint64(binary.BigEndian.Uint16(ext))
	case 127:
		ext := make([]byte, 8)
		if _, err := io.ReadFull(r, ext); err != nil {
			return nil, 0, err
		}
		head = append(head, ext...)
		length = binary.BigEndian.Uint64(ext)
	}
	if head[1]&0x80 != 0 {
		length += 4 // a mask key (servers do not mask; tolerate it)
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, 0, err
	}
	return append(head, body...), head[0] & 0x0f, nil
}

// startCutProxy forwards HTTP requests to target one per connection; for the first n it
// reads the server's answer and then closes the client connection without passing it on.
// It records each request's req_guid.
func startCutProxy(t *testing.T, target string, n int64) *proxy {
	var p *proxy
	// Its own transport: idle connections to the server would hold up the server's shutdown.
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	p = listenProxy(t, func(client net.Conn) {
		defer client.Close()
		br := bufio.NewReader(client)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			body, _ := io.ReadAll(req.Body)
			if r, err := decodeReq(body, req.Header.Get("Content-Type") == "application/json"); err == nil {
				p.mu.Lock()
				p.guids = append(p.guids, r.GetReqGuid())
				p.mu.Unlock()
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
			req.URL.Scheme, req.URL.Host, req.RequestURI = "http", target, ""
			resp, err := tr.RoundTrip(req)
			if err != nil {
				return
			}
			if p.dropped.Load() < n {
				p.dropped.Add(1)
				resp.Body.Close()
				return // cut: the client sees the connection end without an answer
			}
			err = resp.Write(client)
			resp.Body.Close()
			if err != nil {
				return
			}
		}
	})
	return p
}
