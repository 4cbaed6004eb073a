"""The Textual app. Never imports trio or libp2p, never calls Ray directly."""
