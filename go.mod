module github.com/loupe-ml/loupe

go 1.26
