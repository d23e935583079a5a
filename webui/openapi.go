package webui

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/lawbox/appliance/appliance"
)

// openAPIRoute serves the API's contract, made from the route table: every API route is in it, with its
// path parameters, who may call it and how it authenticates, and nothing else. docs/api.md is the guide to
// what each one takes and answers (a test keeps both in step with the table).
const openAPIRoute = "GET /api/v1/openapi.json"

var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

// openAPI is the OpenAPI 3.1 document of the routes.
func openAPI(routes []Route) map[string]any {
	paths := map[string]map[string]any{}
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		if !strings.HasPrefix(path, "/api/") && rt.Pattern != metricsRoute {
			continue
		}
		op := map[string]any{
			"operationId": strings.ToLower(method) + strings.NewReplacer("/api/v1/", "_", "/", "_", "{", "", "}", "", "-", "_", ".", "_").Replace(path),
			"responses": map[string]any{
				"default": map[string]any{"description": "See docs/api.md. Errors: {\"error\": \"what happened and what to do\"}.",
					"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}},
			},
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if params != nil {
			op["parameters"] = params
		}
		switch rt.Access {
		case Public:
			op["security"] = []any{} // setup and login
			op["x-lawbox-access"] = "anyone"
		case Viewer:
			op["x-lawbox-access"] = "logged in"
		case Admin:
			op["x-lawbox-access"] = "admin"
		}
		if rt.Pattern == metricsRoute {
			op["security"] = []any{map[string]any{"basic": []any{}}, map[string]any{"bearer": []any{}}, map[string]any{"cookie": []any{}}}
		}
		switch {
		case rt.Pattern == firmwareUpload:
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/octet-stream": map[string]any{}}}
		case method == http.MethodPost || method == http.MethodPut:
			op["requestBody"] = map[string]any{"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}}
		}
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(method)] = op
	}
	return map[string]any{
		"openapi":      "3.1.0",
		"info":         map[string]any{"title": "lawbox appliance", "version": "v1", "description": "The unit's web API. docs/api.md describes each route."},
		"externalDocs": map[string]any{"description": "The guide to the API", "url": "docs/api.md"},
		"security":     []any{map[string]any{"bearer": []any{}}, map[string]any{"cookie": []any{}}},
		"paths":        paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "the token POST /api/v1/login answers"},
				"cookie": map[string]any{"type": "apiKey", "in": "cookie", "name": CookieName},
				"basic":  map[string]any{"type": "http", "scheme": "basic", "description": "an account without a second factor (Prometheus)"},
			},
			"schemas": map[string]any{
				"Error": map[string]any{"type": "object", "required": []any{"error"}, "properties": map[string]any{"error": map[string]any{"type": "string"}}},
			},
		},
	}
}

func (s *Server) apiOpenAPI(w http.ResponseWriter, _ *http.Request, _ appliance.Session) {
	writeJSON(w, http.StatusOK, openAPI(s.Routes()))
}
