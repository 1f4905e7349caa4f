package raccoon_test

// An in-process stand-in for the server's three endpoints, for unit tests and examples: it
// decodes each SendEventRequest (protobuf or JSON), records it, and answers with what next()
// returns (default: success echoing req_guid).

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	pb "raccoon/clients/go/raccoonpb"
)

type fakeServer struct {
	pb.UnimplementedEventServiceServer
	HTTP     *httptest.Server
	GRPCAddr string
	grpc     *grpc.Server

	mu       sync.Mutex
	requests []*pb.SendEventRequest
	headers  []http.Header
	// reply decides the answer to the n-th request (0-based): the response and an HTTP status.
	reply func(n int, req *pb.SendEventRequest) (*pb.SendEventResponse, int)
}

func ok(req *pb.SendEventRequest) *pb.SendEventResponse {
	return &pb.SendEventResponse{Status: pb.Status_STATUS_SUCCESS, Code: pb.Code_CODE_OK, SentTime: time.Now().Unix(), Data: map[string]string{"req_guid": req.GetReqGuid()}}
}

func fail(req *pb.SendEventRequest, code pb.Code, reason string) *pb.SendEventResponse {
	return &pb.SendEventResponse{Status: pb.Status_STATUS_ERROR, Code: code, SentTime: time.Now().Unix(), Reason: reason, Data: map[string]string{"req_guid": req.GetReqGuid()}}
}

func newFakeServer() *fakeServer {
	f := &fakeServer{reply: func(_ int, req *pb.SendEventRequest) (*pb.SendEventResponse, int) { return ok(req), 200 }}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/events", f.serveHTTP)
	f.HTTP = httptest.NewServer(mux)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	f.grpc = grpc.NewServer()
	pb.RegisterEventServiceServer(f.grpc, f)
	go func() { _ = f.grpc.Serve(lis) }()
	f.GRPCAddr = lis.Addr().String()
	return f
}

func (f *fakeServer) Close() {
	f.grpc.Stop()
	f.HTTP.Close()
}

func (f *fakeServer) WSURL() string {
	return "ws" + strings.TrimPrefix(f.HTTP.URL, "http") + "/api/v1/events"
}
func (f *fakeServer) RestURL() string { return f.HTTP.URL + "/api/v1/events" }

func (f *fakeServer) record(req *pb.SendEventRequest, h http.Header) (*pb.SendEventResponse, int) {
	f.mu.Lock()
	n := len(f.requests)
	f.requests = append(f.requests, req)
	f.headers = append(f.headers, h)
	reply := f.reply
	f.mu.Unlock()
	return reply(n, req)
}

func (f *fakeServer) Requests() []*pb.SendEventRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*pb.SendEventRequest(nil), f.requests...)
}

func (f *fakeServer) Headers() []http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]http.Header(nil), f.headers...)
}

func decodeReq(data []byte, isJSON bool) (*pb.SendEventRequest, error) {
	var req pb.SendEventRequest
	if isJSON {
		// Raccoon's JSON shape (sent_time as {seconds, nanos}), not canonical protobuf JSON.
		var j struct {
			ReqGUID  string `json:"req_guid"`
			SentTime struct {
				Seconds int64 `json:"seconds"`
				Nanos   int32 `json:"nanos"`
			} `json:"sent_time"`
			Events []struct {
				EventBytes []byte `json:"event_bytes"`
				Type       string `json:"type"`
			} `json:"events"`
		}
		if err := json.Unmarshal(data, &j); err != nil {
			return nil, err
		}
		req.ReqGuid = j.ReqGUID
		req.SentTime = &timestamppb.Timestamp{Seconds: j.SentTime.Seconds, Nanos: j.SentTime.Nanos}
		for _, e := range j.Events {
			req.Events = append(req.Events, &pb.Event{EventBytes: e.EventBytes, Type: e.Type})
		}
		return &req, nil
	}
	return &req, proto.Unmarshal(data, &req)
}

func encodeResp(resp *pb.SendEventResponse, isJSON bool) []byte {
	if isJSON {
		b, _ := protojson.MarshalOptions{UseProtoNames: true, UseEnumNumbers: true}.Marshal(resp)
		return b
	}
	b, _ := proto.Marshal(resp)
	return b
}

func (f *fakeServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if websocket.IsWebSocketUpgrade(r) {
		f.serveWS(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	isJSON := strings.Contains(r.Header.Get("Content-Type"), "json")
	req, err := decodeReq(body, isJSON)
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		_ = json.NewEncoder(w).Encode(map[string]interface{}{"status": 2, "code": 2, "reason": err.Error()})
		return
	}
	resp, status := f.record(req, r.Header.Clone())
	w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
	w.WriteHeader(status)
	_, _ = w.Write(encodeResp(resp, isJSON))
}

func (f *fakeServer) serveWS(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	for {
		mt, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		req, err := decodeReq(data, mt == websocket.TextMessage)
		if err != nil {
			return
		}
		resp, status := f.record(req, r.Header.Clone())
		if status == 0 {
			continue // no reply: the test wants a timeout
		}
		if err := ws.WriteMessage(mt, encodeResp(resp, mt == websocket.TextMessage)); err != nil {
			return
		}
	}
}

// SendEvent is the gRPC endpoint; a status of 0 becomes an UNAVAILABLE error.
func (f *fakeServer) SendEvent(ctx context.Context, req *pb.SendEventRequest) (*pb.SendEventResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	h := http.Header{}
	for k, vs := range md {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	resp, status := f.record(req, h)
	if status == 0 {
		return nil, errUnavailable
	}
	return resp, nil
}
