package raccoon_test

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var errUnavailable = status.Error(codes.Unavailable, "fake: unavailable")
