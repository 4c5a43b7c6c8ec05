package assertion

import (
	"errors"
	"fmt"
)

// ErrInvalid is matched (errors.Is) by every *Error.
var ErrInvalid = errors.New("assertion: invalid")

// Error is the refusal of an assertion: the rule of RFC 7523 section 3 it
// breaks (1 to 10) and what was wrong. The server answers it as
// invalid_grant with Description as error_description.
type Error struct {
	Rule   int
	Reason string
}

// Description is the error_description of the invalid_grant answer.
func (e *Error) Description() string {
	return fmt.Sprintf("%s (RFC 7523 section 3, rule %d: %s)", e.Reason, e.Rule, ruleNames[e.Rule])
}

// Error returns the description with the package prefix.
func (e *Error) Error() string { return "assertion: " + e.Description() }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// ruleNames are the subjects of the rules of RFC 7523 section 3.
var ruleNames = map[int]string{
	1:  "iss",
	2:  "sub",
	3:  "aud",
	4:  "exp",
	5:  "nbf",
	6:  "iat",
	7:  "jti",
	8:  "other claims",
	9:  "signature",
	10: "valid JWT",
}

func refuse(rule int, format string, args ...any) *Error {
	return &Error{Rule: rule, Reason: fmt.Sprintf(format, args...)}
}
