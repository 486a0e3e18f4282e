"""HTML templates and CSS of the member report and the operator overview."""
