package inference

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Error is an error in OpenAI's shape: the HTTP status and the body
// {"error":{"message","type","param","code"}} that OpenAI's clients decode
// (the official SDKs raise BadRequestError, AuthenticationError,
// NotFoundError, ... by status and show message).
type Error struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *Error) Error() string { return e.Message }

// ErrorBody is the JSON body of an error response.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// Error types, as OpenAI names them.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "authentication_error"
	TypePermission     = "permission_error"
	TypeNotFound       = "not_found_error"
	TypeRateLimit      = "rate_limit_error"
	TypeServer         = "server_error"
	TypeUnavailable    = "service_unavailable"
)

func strp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Invalid is a 400 about one request parameter.
func Invalid(param, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: TypeInvalidRequest, Param: strp(param), Code: strp("invalid_value"), Message: msg}
}

// NewError builds an error with the given status, type, code and message.
func NewError(status int, typ, code, msg string) *Error {
	return &Error{Status: status, Type: typ, Code: strp(code), Message: msg}
}

// ModelNotFound is OpenAI's 404 for an unknown model.
func ModelNotFound(model string) *Error {
	return &Error{Status: http.StatusNotFound, Type: TypeInvalidRequest, Param: strp("model"), Code: strp("model_not_found"),
		Message: "The model `" + model + "` does not exist or is not served by this node or any peer it can reach; GET /v1/models lists the models"}
}

// WriteError answers err in OpenAI's shape; an error that is not an *Error
// is a 500 whose details stay in the server log.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = NewError(http.StatusInternalServerError, TypeServer, "internal_error", "internal error; see the server log")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(ErrorBody{Error: e})
}
