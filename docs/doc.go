// Package docs holds Pyramid's user documentation as Markdown files; its
// test keeps every link in the repository's Markdown pointing at something
// that exists inside the repository.
package docs
