module ocigo.invalid/tools/unicodegen

go 1.26
