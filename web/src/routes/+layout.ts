// A single-page app: rendered in the browser, served as static files.
export const ssr = false;
export const prerender = false;
