package rest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/knooppunt/knooppunt/node/api"
)

// TestRateLimitIs429: a RESOURCE_EXHAUSTED that says when to retry (RetryInfo: a rate limit,
// such as the searches that ask the partners) is 429 with Retry-After in whole seconds, where
// every RESOURCE_EXHAUSTED was 413 and told a client that its request was too large; a size
// refusal stays 413.
func TestRateLimitIs429(t *testing.T) {
	limited, err := status.New(codes.ResourceExhausted, "spiffe://a.test/user/lus is over its limit of 10 searches a second").
		WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(1200 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		err   error
		code  int
		after string
	}{
		{"a rate limit", limited.Err(), http.StatusTooManyRequests, "2"},
		{"a size", status.Error(codes.ResourceExhausted, "record.body: 2097221 bytes is over the limit of 1048576 bytes"), http.StatusRequestEntityTooLarge, ""},
		// A full disk is retried later, as one under its reserve (TestRESTDiskLow): 503.
		{"a full disk", api.ReasonStatus(codes.ResourceExhausted, api.ReasonDiskFull, "the disk of the data directory is full"), http.StatusServiceUnavailable, "60"},
	} {
		w := httptest.NewRecorder()
		errorHandler(64<<20)(context.Background(), runtime.NewServeMux(), &runtime.JSONPb{}, w, httptest.NewRequest("POST", "/v1/search", nil), tc.err)
		if w.Code != tc.code || w.Header().Get("Retry-After") != tc.after {
			t.Errorf("%s: %d with Retry-After %q, want %d with %q", tc.name, w.Code, w.Header().Get("Retry-After"), tc.code, tc.after)
		}
	}
}
