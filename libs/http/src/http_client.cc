// HTTP client: see atrium/http/client.h
