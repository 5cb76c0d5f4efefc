// Starts Swagger UI on the gateway's /docs page. It is a served file rather than an inline
// script so that the page's Content-Security-Policy allows scripts from 'self' only.
"use strict";

window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  // No badge from validator.swagger.io: the page talks to the gateway only.
  validatorUrl: null,
  // Tokens from the Authorize dialog stay in memory, never in localStorage.
  persistAuthorization: false,
});
