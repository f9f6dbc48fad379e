"""Online Boutique wire contract (package ``hipstershop``): demo.proto and its generated stubs."""
