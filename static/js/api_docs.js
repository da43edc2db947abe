// The API reference (/api/docs): Swagger UI, configured from the page's data-settings (no inline script).
const root = document.getElementById("swagger-ui");
const config = JSON.parse(root.dataset.settings);
config.dom_id = "#swagger-ui";
config.presets = [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset];
SwaggerUIBundle(config);
