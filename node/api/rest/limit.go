package rest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/api"
)

// limitedBody is a request body under http.MaxBytesReader that notes when the limit cut it off,
// so that the error handler can say so: the gateway hands on only the reader's error text.
type limitedBody struct {
	io.ReadCloser
	over *bool
}

func (b limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		*b.over = true
	}
	return n, err
}

type overKey struct{}

// diskRetry is the Retry-After of a write refused for the disk: freeing space takes a person.
const diskRetry = time.Minute

// errorHandler is grpc-gateway's, except for what is too large. RESOURCE_EXHAUSTED for
// something over a size limit (a record body, a policy, a file) is 413 Content Too Large
// instead of the gateway's 429 Too Many Requests, which HTTP clients take for "slow down and
// retry" and would send the same request again forever; one that says when to retry (a rate
// limit) is 429 with Retry-After; a write the node's disk has no room for (DISK_LOW, DISK_FULL) is 503
// with Retry-After, to be sent again later, not dropped as too large. A request body over the
// API's own limit is a 413 that names the limit, not a bare 400.
func errorHandler(limit int64) runtime.ErrorHandlerFunc {
	return func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
		if over, _ := ctx.Value(overKey{}).(*bool); over != nil && *over {
			err = status.Error(codes.ResourceExhausted, fmt.Sprintf("request body: over this API's limit of %d bytes: send fewer records in one batch", limit))
		}
		if st := status.Convert(err); st.Code() == codes.InvalidArgument && strings.Contains(st.Message(), "invalid value for bytes field body") {
			// A JSON object where protojson wants bytes: the first thing an integrator sends.
			err = status.Error(codes.InvalidArgument, st.Message()+": in REST JSON, record.body is the base64 of the JSON object's UTF-8 bytes, such as \"eyJiZWRzX2ZyZWUiOjN9\" for {\"beds_free\":3}")
		}
		if st := status.Convert(err); st.Code() == codes.InvalidArgument && strings.Contains(st.Message(), "proto:") && len(st.Details()) == 0 {
			// protojson's prefix names the library, not what to fix (review AF, AF7).
			err = status.Error(codes.InvalidArgument, strings.NewReplacer("proto:\u00a0", "", "proto: ", "").Replace(st.Message()))
		}
		if st := status.Convert(err); st.Code() == codes.InvalidArgument {
			if msg := timeMessage(st.Message()); msg != "" {
				err = status.Error(codes.InvalidArgument, msg)
			}
			if named, hint := enumHint(st.Message()); hint != "" {
				// protojson and the gateway name the field and the value, not what it may be.
				err = status.Error(codes.InvalidArgument, named+": "+hint)
			}
			if msg := durationMessage(st.Message()); msg != "" {
				err = status.Error(codes.InvalidArgument, msg)
			}
		}
		switch status.Code(err) {
		case codes.ResourceExhausted:
			// A refusal that says when to retry (RetryInfo: a rate limit, such as the searches
			// that ask the partners) is 429 with Retry-After; any other (a size) is no reason to
			// retry.
			if after, ok := api.RetryAfter(err); ok {
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(after.Seconds()))))
				w = mended{ResponseWriter: w, code: http.StatusTooManyRequests}
				break
			}
			if r := api.Reason(err); r == api.ReasonDiskLow || r == api.ReasonDiskFull {
				w.Header().Set("Retry-After", strconv.Itoa(int(diskRetry.Seconds())))
				w = mended{ResponseWriter: w, code: http.StatusServiceUnavailable}
				break
			}
			w = mended{ResponseWriter: w, code: http.StatusRequestEntityTooLarge}
		case codes.Unauthenticated:
			// The gateway puts the status message in WWW-Authenticate; RFC 7235 wants a
			// challenge there, and clients parse it. The message stays in the body.
			w = mended{ResponseWriter: w, challenge: `Bearer realm="knooppunt"`}
		}
		runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
	}
}

// mended mends what the gateway's error handler writes: code, when set, for its status, and
// challenge, when set, for its WWW-Authenticate.
type mended struct {
	http.ResponseWriter
	code      int
	challenge string
}

func (w mended) WriteHeader(code int) {
	if w.challenge != "" {
		w.Header().Set("WWW-Authenticate", w.challenge)
	}
	if w.code != 0 {
		code = w.code
	}
	w.ResponseWriter.WriteHeader(code)
}
