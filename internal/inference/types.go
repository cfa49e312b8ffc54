package inference

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// ChatMessage is one message of a chat request. Content is a string or an
// array of content parts of which only text parts are understood.
type ChatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	Name    string          `json:"name,omitempty"`
}

// StreamOptions are the options of a streaming request.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// StringList is a JSON string or array of strings (stop, input, prompt).
type StringList []string

// UnmarshalJSON accepts "s", ["a","b"] and null.
func (s *StringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*s = nil
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = StringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a string or an array of strings")
	}
	*s = many
	return nil
}

// ChatRequest is the body of POST /v1/chat/completions (the fields this
// server reads; others are ignored, as OpenAI's own server ignores unknown
// ones, unless listed in unsupported).
type ChatRequest struct {
	Model               string          `json:"model"`
	Messages            []ChatMessage   `json:"messages"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	N                   *int            `json:"n"`
	Stream              bool            `json:"stream"`
	StreamOptions       *StreamOptions  `json:"stream_options"`
	Stop                StringList      `json:"stop"`
	Seed                *int64          `json:"seed"`
	User                string          `json:"user"`
	PresencePenalty     *float64        `json:"presence_penalty"`
	FrequencyPenalty    *float64        `json:"frequency_penalty"`
	Logprobs            *bool           `json:"logprobs"`
	Tools               json.RawMessage `json:"tools"`
	ResponseFormat      json.RawMessage `json:"response_format"`
}

// CompletionRequest is the body of POST /v1/completions.
type CompletionRequest struct {
	Model            string         `json:"model"`
	Prompt           StringList     `json:"prompt"`
	MaxTokens        *int           `json:"max_tokens"`
	Temperature      *float64       `json:"temperature"`
	TopP             *float64       `json:"top_p"`
	N                *int           `json:"n"`
	Stream           bool           `json:"stream"`
	StreamOptions    *StreamOptions `json:"stream_options"`
	Stop             StringList     `json:"stop"`
	Seed             *int64         `json:"seed"`
	User             string         `json:"user"`
	Echo             bool           `json:"echo"`
	Suffix           *string        `json:"suffix"`
	Logprobs         *int           `json:"logprobs"`
	BestOf           *int           `json:"best_of"`
	PresencePenalty  *float64       `json:"presence_penalty"`
	FrequencyPenalty *float64       `json:"frequency_penalty"`
}

// EmbeddingRequest is the body of POST /v1/embeddings. Input is a string or
// an array of strings (token arrays are refused: our models' tokens are
// bytes, not an OpenAI tokenizer's ids).
type EmbeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
	User           string          `json:"user"`
}

// Usage counts tokens as OpenAI does.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// ChatChoice is one choice of a non-streaming chat response.
type ChatChoice struct {
	Index        int             `json:"index"`
	Message      ResponseMessage `json:"message"`
	Logprobs     *struct{}       `json:"logprobs"`
	FinishReason string          `json:"finish_reason"`
}

// ResponseMessage is the assistant's message.
type ResponseMessage struct {
	Role    string  `json:"role"`
	Content string  `json:"content"`
	Refusal *string `json:"refusal"`
}

// ChatResponse is a chat.completion object.
type ChatResponse struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	SystemFingerprint string       `json:"system_fingerprint,omitempty"`
	Choices           []ChatChoice `json:"choices"`
	Usage             *Usage       `json:"usage"`
}

// ChunkDelta is the delta of a streamed chat chunk.
type ChunkDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

// ChunkChoice is one choice of a chat.completion.chunk.
type ChunkChoice struct {
	Index        int        `json:"index"`
	Delta        ChunkDelta `json:"delta"`
	Logprobs     *struct{}  `json:"logprobs"`
	FinishReason *string    `json:"finish_reason"`
}

// ChatChunk is a chat.completion.chunk object (one SSE event).
type ChatChunk struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	SystemFingerprint string        `json:"system_fingerprint,omitempty"`
	Choices           []ChunkChoice `json:"choices"`
	Usage             *Usage        `json:"usage,omitempty"`
}

// TextChoice is one choice of a text_completion.
type TextChoice struct {
	Index        int       `json:"index"`
	Text         string    `json:"text"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

// CompletionResponse is a text_completion object (also each streamed event).
type CompletionResponse struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	SystemFingerprint string       `json:"system_fingerprint,omitempty"`
	Choices           []TextChoice `json:"choices"`
	Usage             *Usage       `json:"usage,omitempty"`
}

// Embedding is one vector of an embeddings response: a []float32 or, with
// encoding_format base64, the base64 of its little-endian float32 bytes.
type Embedding struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"`
}

// EmbeddingResponse is the body of an embeddings response.
type EmbeddingResponse struct {
	Object string      `json:"object"`
	Data   []Embedding `json:"data"`
	Model  string      `json:"model"`
	Usage  struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

// ModelObject is one entry of GET /v1/models.
type ModelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	// Hyperspace extensions (OpenAI clients ignore unknown fields).
	Kind  string `json:"kind"`
	Route string `json:"route"`
	Hash  string `json:"hash,omitempty"`
}

// ModelList is the body of GET /v1/models.
type ModelList struct {
	Object string        `json:"object"`
	Data   []ModelObject `json:"data"`
}
