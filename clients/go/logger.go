package raccoon

import (
	"io"
	"log"
	"os"
)

// Logger is where the clients report what happens to connections and retries. Nothing per
// event is logged.
type Logger interface {
	Infof(format string, args ...interface{})
	Errorf(format string, args ...interface{})
}

// ConsoleLogger writes lines prefixed "raccoon: " to a writer; it is the default logger
// (on os.Stderr).
type ConsoleLogger struct{ l *log.Logger }

// NewConsoleLogger returns a ConsoleLogger writing to w.
func NewConsoleLogger(w io.Writer) *ConsoleLogger {
	return &ConsoleLogger{l: log.New(w, "raccoon: ", log.LstdFlags|log.Lmicroseconds)}
}

func (c *ConsoleLogger) Infof(format string, args ...interface{}) {
	c.l.Printf("INFO "+format, args...)
}
func (c *ConsoleLogger) Errorf(format string, args ...interface{}) {
	c.l.Printf("ERROR "+format, args...)
}

// NopLogger discards everything: WithLogger(NopLogger{}) disables logging.
type NopLogger struct{}

func (NopLogger) Infof(string, ...interface{})  {}
func (NopLogger) Errorf(string, ...interface{}) {}

func defaultLogger() Logger { return NewConsoleLogger(os.Stderr) }
