package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/store"
	"github.com/radtriage/radtriage/worklist"
)

// retryAfterSeconds is the Retry-After sent with 503 when the index
// database is unavailable.
const retryAfterSeconds = "10"

// httpError is an error the handlers raise with its status decided where
// they know it (a bad query parameter, a media type nobody accepts).
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// statusOf maps an error to its HTTP status. It is the only place that
// does so.
func statusOf(err error) int {
	var he *httpError
	var mbe *http.MaxBytesError
	var mte *dicomio.MediaTypeError
	var mpe *dicomio.MultipartError
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.As(err, &mbe), errors.Is(err, store.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.As(err, &mte):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, dicomio.ErrNoBoundary), errors.As(err, &mpe), errors.Is(err, store.ErrInvalidQuery),
		errors.Is(err, store.ErrInvalidResult):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrNotFound), errors.Is(err, dicomio.ErrFrameRange), errors.Is(err, dicomio.ErrNoPixelData):
		return http.StatusNotFound
	case errors.Is(err, dicomio.ErrNotNative), errors.Is(err, dicomio.ErrUnsupportedTransferSyntax):
		// Frames are served as uncompressed octet-stream only; a syntax
		// this build cannot decode has no acceptable representation
		// (PS3.18 §8.7.3.5 → 406).
		return http.StatusNotAcceptable
	case errors.Is(err, worklist.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, worklist.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, worklist.ErrConflict), errors.Is(err, worklist.ErrCompleted), errors.Is(err, worklist.ErrNotClaimed):
		// Another user's live claim (the message names the holder and
		// the lease end; also for release or complete by someone else),
		// a study already done, a release of an unclaimed study: the
		// request conflicts with the study's current state.
		return http.StatusConflict
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, worklist.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled):
		return 499 // client went away; nobody reads the answer
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// abortWithError answers err as {"error": "..."} with its status, and
// logs server-side failures.
func (s *server) abortWithError(c *gin.Context, err error) {
	status := statusOf(err)
	msg := err.Error()
	if status == http.StatusServiceUnavailable {
		c.Header("Retry-After", retryAfterSeconds)
	}
	if status >= 500 {
		s.log.ErrorContext(c.Request.Context(), "request failed", "method", c.Request.Method,
			"path", c.Request.URL.Path, "status", status, "err", err)
		if status == http.StatusInternalServerError {
			msg = "internal error"
		}
	}
	c.Error(err)
	c.AbortWithStatusJSON(status, gin.H{"error": msg})
}
