package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/radtriage/radtriage/store"
	"github.com/radtriage/radtriage/triage"
)

// The key-image route (issue 8):
//
//	GET /api/v1/studies/{study}/key-image.png?plane=axial&window=brain&slice=-1&outline=1
//
// answers a PNG of a plane of the series the study's stored triage result
// was made on, windowed, with the result's lesions outlined
// (triage.KeyImages). Parameters, all optional:
//
//	plane    axial (default; the stored slices), coronal or sagittal
//	         (reformats with square pixels, the head up)
//	window   brain (40/80, default), subdural (75/215), stroke (40/40),
//	         bone (600/2800) or soft (50/400)
//	slice    the section's index along the grid axis across the plane;
//	         -1 (default) the key section of the top finding (the middle
//	         one without a finding)
//	outline  1 or true (default): outline the result's mask; 0 or false: don't
//
// Statuses: 200 image/png with Cache-Control: private, max-age=60; 400 a
// study UID that dicomio.ValidateUID refuses, or a bad parameter (an
// unknown plane or window, a slice outside the series); 404 a study
// without a stored result, or whose result's series is no longer stored;
// 406 an Accept header that excludes image/png; 503 when the server has
// no key images configured, or the index database is unavailable.

// KeyImager renders key images of stored triage results
// (triage.KeyImages implements it).
type KeyImager interface {
	PNG(ctx context.Context, study string, o triage.KeyImageOptions) ([]byte, error)
}

var (
	_ KeyImager             = (*triage.KeyImages)(nil)
	_ triage.KeyImageSource = (*store.DB)(nil)
)

// mediaTypePNG is the media type of key images.
const mediaTypePNG = "image/png"

// needKeyImages answers 503 on the key-image route of a server built
// without key images.
func (s *server) needKeyImages(c *gin.Context) {
	if s.cfg.KeyImages == nil {
		s.abortWithError(c, errorf(http.StatusServiceUnavailable, "key images are not configured on this server (api.Config.KeyImages is nil)"))
		return
	}
	c.Next()
}

func (s *server) keyImage(c *gin.Context) {
	study, err := pathStudy(c)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	o, err := keyImageOptions(c)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	if !accepts(c, mediaTypePNG) {
		s.abortWithError(c, errorf(http.StatusNotAcceptable, "key images are served as %s only; Accept %q excludes it", mediaTypePNG, c.GetHeader("Accept")))
		return
	}
	b, err := s.cfg.KeyImages.PNG(c.Request.Context(), study, o)
	switch {
	case errors.Is(err, triage.ErrKeyImageOptions):
		err = errorf(http.StatusBadRequest, "%v", err)
	case errors.Is(err, triage.ErrNoKeyImage):
		err = errorf(http.StatusNotFound, "%v", err)
	}
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	c.Header("Cache-Control", "private, max-age=60")
	c.Data(http.StatusOK, mediaTypePNG, b)
}

// keyImageOptions reads the key-image query parameters; plane and window
// are checked by the KeyImager.
func keyImageOptions(c *gin.Context) (triage.KeyImageOptions, error) {
	o := triage.KeyImageOptions{Plane: c.Query("plane"), Window: c.Query("window"), Slice: -1, Outline: true}
	if v, ok := c.GetQuery("slice"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return o, errorf(http.StatusBadRequest, "slice %q is not a whole number (-1 for the key slice)", v)
		}
		o.Slice = n
	}
	if v, ok := c.GetQuery("outline"); ok {
		switch v {
		case "1", "true":
			o.Outline = true
		case "0", "false":
			o.Outline = false
		default:
			return o, errorf(http.StatusBadRequest, "outline %q: want 1, true, 0 or false", v)
		}
	}
	return o, nil
}
