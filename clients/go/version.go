package raccoon

import "fmt"

// Client information, sent as the User-Agent of every request ("raccoon-go/<Version>").
// Set them at build time:
//
//	go build -ldflags "-X raccoon/clients/go.Version=1.2.3 \
//	  -X raccoon/clients/go.BuildDate=2026-01-02"
var (
	Name      = "raccoon-go"
	Version   = "dev"
	BuildDate = "unknown"
)

// UserAgent is the User-Agent the clients send: Name/Version (BuildDate).
func UserAgent() string { return fmt.Sprintf("%s/%s (built %s)", Name, Version, BuildDate) }
