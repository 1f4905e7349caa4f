package raccoon

import (
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	pb "raccoon/clients/go/raccoonpb"
)

// buildRequest serializes each event's Data and wraps them in a SendEventRequest.
func buildRequest(ser Serializer, guid string, events []*Event, now time.Time) (*pb.SendEventRequest, error) {
	req := &pb.SendEventRequest{ReqGuid: guid, SentTime: timestamppb.New(now), Events: make([]*pb.Event, 0, len(events))}
	for i, ev := range events {
		if ev == nil {
			return nil, fmt.Errorf("raccoon: event %d is nil", i)
		}
		b, err := ser(ev.Data)
		if err != nil {
			return nil, fmt.Errorf("raccoon: serializing event %d (type %q): %w", i, ev.Type, err)
		}
		req.Events = append(req.Events, &pb.Event{EventBytes: b, Type: ev.Type})
	}
	return req, nil
}

// jsonRequest is the JSON shape of SendEventRequest that both this server and Raccoon v0.3
// (Go's encoding/json of the generated struct) accept: snake_case keys, sent_time as
// {seconds, nanos}, event_bytes in standard base64.
type jsonRequest struct {
	ReqGUID  string      `json:"req_guid"`
	SentTime jsonTime    `json:"sent_time"`
	Events   []jsonEvent `json:"events"`
}

type jsonTime struct {
	Seconds int64 `json:"seconds"`
	Nanos   int32 `json:"nanos"`
}

type jsonEvent struct {
	EventBytes []byte `json:"event_bytes"`
	Type       string `json:"type"`
}

// encodeRequest encodes req in the given encoding.
func encodeRequest(req *pb.SendEventRequest, encoding Encoding) ([]byte, error) {
	if encoding == EncodingProto {
		return proto.Marshal(req)
	}
	j := jsonRequest{
		ReqGUID:  req.GetReqGuid(),
		SentTime: jsonTime{Seconds: req.GetSentTime().GetSeconds(), Nanos: req.GetSentTime().GetNanos()},
		Events:   make([]jsonEvent, len(req.GetEvents())),
	}
	for i, ev := range req.GetEvents() {
		j.Events[i] = jsonEvent{EventBytes: ev.GetEventBytes(), Type: ev.GetType()}
	}
	return json.Marshal(j)
}

// decodeResponse decodes a SendEventResponse in the given encoding. JSON replies use
// snake_case names and numeric enums; protojson reads those as well as canonical JSON.
func decodeResponse(body []byte, encoding Encoding) (*Response, error) {
	var p pb.SendEventResponse
	var err error
	if encoding == EncodingProto {
		err = proto.Unmarshal(body, &p)
	} else {
		err = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(body, &p)
	}
	if err != nil {
		return nil, fmt.Errorf("raccoon: cannot decode %v reply (%d bytes): %w", encoding, len(body), err)
	}
	return responseFromPB(&p), nil
}
