package api

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
)

// Stable error codes of the REST API.
const (
	CodeInvalidJSON      = "invalid_json"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeInvalidField     = "invalid_field"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeConflict         = "conflict"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
	CodeTooLarge         = "request_too_large"
)

// ErrorBody is the JSON shape of every error: {"error":{"code","message","field"?}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong and, for input errors, which field.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// apiError is an error with an HTTP status and a stable code.
type apiError struct {
	Status int
	ErrorDetail
}

func (e *apiError) Error() string { return e.Message }

func fieldErr(field, msg string) *apiError {
	return &apiError{Status: http.StatusUnprocessableEntity, ErrorDetail: ErrorDetail{Code: CodeInvalidField, Field: field, Message: field + ": " + msg}}
}

func newErr(status int, code, msg string) *apiError {
	return &apiError{Status: status, ErrorDetail: ErrorDetail{Code: code, Message: msg}}
}

// writeErr answers err as JSON; anything that is not an apiError is a 500
// whose details go to the log, not to the client.
func (s *Server) writeErr(c *gin.Context, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		c.AbortWithStatusJSON(ae.Status, ErrorBody{Error: ae.ErrorDetail})
		return
	}
	s.log().Error("request failed", "method", c.Request.Method, "path", c.Request.URL.Path, "error", err)
	c.AbortWithStatusJSON(http.StatusInternalServerError, ErrorBody{Error: ErrorDetail{Code: CodeInternal, Message: "internal error; see the server log"}})
}
