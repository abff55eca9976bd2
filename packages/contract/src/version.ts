// The API version, shared by the server's health reply and the OpenAPI document.
export const apiVersion = "0.1.0";
