package raccoon_test

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	raccoon "raccoon/clients/go"
)

// The examples run against an in-process stand-in for the server (newFakeServer); point the
// URL or address at a real Raccoon instead.

func ExampleNewRest() {
	srv := newFakeServer()
	defer srv.Close()

	client, err := raccoon.NewRest(
		raccoon.WithURL(srv.RestURL()),
		raccoon.WithSerializer(raccoon.JSON),
		raccoon.WithEncoding(raccoon.EncodingJSON),
		raccoon.WithRetry(3, 100*time.Millisecond, time.Second),
	)
	if err != nil {
		panic(err)
	}
	defer client.Close()
	client.SetAppInfo(&raccoon.App{ID: "goplay-123", Name: "goplay-backend", Version: "1.0"})

	guid, resp, err := client.Send([]*raccoon.Event{
		{Type: "page", Data: map[string]string{"name": "home"}},
	})
	if err != nil {
		fmt.Println("send failed:", err)
		return
	}
	fmt.Println(resp.Status, resp.Code, resp.ReqGUID() == guid)
	// Output: SUCCESS OK true
}

func ExampleNewGrpc() {
	srv := newFakeServer()
	defer srv.Close()

	client, err := raccoon.NewGrpc(
		raccoon.WithAddr(srv.GRPCAddr),
		raccoon.WithHeader("X-User-ID", "user-1"), // the server's connection id header
	)
	if err != nil {
		panic(err)
	}
	defer client.Close()

	// PROTO, the default serializer, takes any proto.Message.
	_, resp, err := client.Send([]*raccoon.Event{{Type: "click", Data: timestamppb.Now()}})
	fmt.Println(resp.Status, err)
	// Output: SUCCESS <nil>
}

func ExampleNewWebSocket() {
	srv := newFakeServer()
	defer srv.Close()

	client, err := raccoon.NewWebSocket(
		raccoon.WithURL(srv.WSURL()),
		raccoon.WithHeader("X-User-ID", "user-1"),
		raccoon.WithSerializer(raccoon.JSON),
		raccoon.WithPing(10*time.Second, 20*time.Second),
		raccoon.WithAckBuffer(256),
	)
	if err != nil {
		panic(err)
	}
	defer client.Close()

	guid, resp, err := client.Send([]*raccoon.Event{{Type: "page", Data: map[string]int{"n": 1}}})
	fmt.Println(resp == nil, err) // the reply comes on Acks
	select {
	case ack := <-client.Acks():
		fmt.Println(ack.ReqGUID == guid, ack.Err, ack.Response.Status)
	case <-time.After(5 * time.Second):
		fmt.Println("no ack")
	}
	// Output:
	// true <nil>
	// true <nil> SUCCESS
}

func ExampleSerializer() {
	// Any func(interface{}) ([]byte, error) is a serializer.
	csv := raccoon.Serializer(func(v interface{}) ([]byte, error) {
		p := v.([2]string)
		return []byte(p[0] + "," + p[1]), nil
	})
	b, _ := csv([2]string{"a", "b"})
	fmt.Println(string(b))
	_ = raccoon.WithSerializer(csv)
	// Output: a,b
}

func ExampleWithLogger() {
	// nil (or raccoon.NopLogger{}) silences the client; any Logger replaces the console one.
	_, err := raccoon.NewRest(raccoon.WithLogger(nil))
	fmt.Println(err)
	// Output: <nil>
}
