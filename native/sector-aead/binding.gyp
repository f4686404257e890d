{
  "targets": [
    {
      "target_name": "sector_aead",
      "sources": ["sector_aead.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
