"""HTTP routers, one per concern; they translate requests and hold no numerics."""
